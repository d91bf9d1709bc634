"""The child pool under every strategy without weight sharing: each child is built by `build_child` with
fresh weights (nothing shared, nothing inherited), trained from scratch for `child_epochs` by an
executor (in process, worker processes or Ray tasks, enas/executors.py) and scored on the validation
split; its reward follows the NAS paper (`nas_reward`). A failed child (error, NaN, out of memory, a
dead worker) earns FLOOR_REWARD and is recorded with its error.

A strategy's loop (nas.py) works in batches:

    archs = pool.draw(sample)    # the batch's architectures, drawn once and kept in the checkpoint
    rewards = pool.train(archs)  # every child of the batch, from scratch; their rewards in order
    pool.end_batch(rewards)      # the next batch, and a checkpoint

A strategy whose children are cells of several sizes (PNAS) gives the pool how to read an arc
(`parse`), extra fields for each child's record (the batch's `extras`), the words its progress line
starts with (`describe`) and what makes a child the best (`rank`).

The checkpoint is rewritten after every finished child, so a search killed mid-batch resumes without
training again the children it already has. A stop (Ctrl-C, SIGTERM) abandons the children still
training: they are not recorded, and a resumed search trains them again. Each child's archs.jsonl
record carries its number in the search ("child"); a record written just before a kill and not yet in
the checkpoint is taken back on resume (its child is finished, so it is not trained again), and every
child is recorded once.
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import torch
from tqdm import tqdm

from .. import checkpoint as ckpt
from ..arch import Arch
from ..child_training import child_payload, nas_reward
from ..config import TrainConfig, to_dict
from ..errors import EnasError
from ..executors import check_executor, make_executor
from ..hparams import run_hparams
from ..interrupt import stop_on_interrupt
from ..logger import RunLogger, cell_figure, cell_text, count_of, format_metric
from ..projection import Projection
from ..rundir import read_archs
from ..runtime import absolute_data_dir, resolve_device, seed_everything
from ..spaces import get_space
from ..tasks import make_task
from .base import Strategy, _check_config, next_train
from .engine import StopRun

FLOOR_REWARD = 0.0  # what a failed child (error, NaN, out of memory, dead worker) earns


class ChildPool:
    """The children of a search, one pending batch at a time, and the best child so far."""

    def __init__(self, cfg, run_dir: Path, space, logger: RunLogger, progress: bool, picked: str):
        self.cfg, self.run_dir, self.space, self.logger, self.progress = cfg, run_dir, space, logger, progress
        self.picked = picked      # how the children were chosen, in words (arch.json's "how")
        self.batch = self.children = 0                # finished batches, and their children
        # {"archs": [str], "rewards": {index: float}, "metrics": {index: float | None}, "extras": [dict]?}
        self.pending: dict | None = None
        self.best: dict | None = None                 # the archs.jsonl record of the best child so far
        self.finished = False
        # what a strategy may set: how an arc is read, its progress words, the order of the children
        self.parse: Callable[[str], Arch] = lambda text: Arch.parse(self.space, text)
        self.describe: Callable[[], str] = lambda: ""
        self.rank: Callable[[dict], object] = lambda record: record["reward"]
        # the run under way (`running`): how it saves, where children train, what stops it
        self._save: Callable[[], None] = lambda: None
        self._executor = self._stop = self._bar = self._projection = None
        self._max_children: int | None = None
        self._deadline: float | None = None
        self._done = 0  # children trained in this run

    # --- the three calls of a strategy's loop ----------------------------------------------------
    @contextmanager
    def running(self, save: Callable[[], None], max_children: int | None = None,
                deadline: float | None = None, total: int = 0) -> Iterator["ChildPool"]:
        """The executor, the progress bar (`total` children) and the stop of one run; the block runs
        the batches. A stop (Ctrl-C or SIGTERM, `max_children` children trained, the time.monotonic()
        `deadline` of a budgeted comparison: children still training are dropped) leaves it with
        `finished` False, the checkpoint holding every child recorded so far."""
        c = self.cfg
        self._save, self._max_children, self._deadline = save, max_children, deadline
        self._done, self.finished = 0, False
        executor = make_executor(c.executor, workers=c.workers, num_cpus=c.cpus_per_child,
                                 num_gpus=c.gpus_per_child, address=c.ray_address or None)
        finished = self.children + len(self.pending["rewards"] if self.pending else ())
        bar = tqdm(total=total, initial=finished, unit=" child", desc=c.strategy, dynamic_ncols=True,
                   disable=not self.progress)
        with executor, stop_on_interrupt() as stop, bar:
            self._executor, self._stop, self._bar = executor, stop, bar
            self._projection = Projection(total - finished, "this machine") if deadline is None else None
            try:
                yield self
            except StopRun:
                return
            self.finished = True
            self.logger.flush()

    def draw(self, sample: Callable[[], list[str] | tuple[list[str], list[dict]]]) -> list[str]:
        """The architectures of this batch: drawn by `sample()` now and saved at once, or, after a
        resume, the pending ones of the checkpoint. `sample` may also give one dict per architecture,
        fields its children's archs.jsonl records carry."""
        if self.pending is None:
            drawn = sample()
            archs, extras = drawn if isinstance(drawn, tuple) else (drawn, None)
            self.pending = {"archs": archs, "rewards": {}, "metrics": {}, **({"extras": extras} if extras else {})}
            self._save()
        return self.pending["archs"]

    def metrics(self) -> list[float | None]:
        """The validation metric of each child of the pending batch, in order (None: it failed)."""
        return [self.pending["metrics"].get(str(k)) for k in range(len(self.pending["archs"]))]

    def train(self, archs: list[str]) -> list[float]:
        """Train every child of the batch not finished yet; their rewards in order. A stop raises
        StopRun (the checkpoint holds every child recorded so far)."""
        rewards = self.pending["rewards"]
        for k, arch in enumerate(archs):
            if str(k) not in rewards:  # resumed: only the children not finished yet
                self._executor.submit({"id": k, "attempt": 0, "payload": child_payload(
                    self.parse(arch), self._child_config(self.children + k))})
        self._show()
        for outcome in self._executor.results(self._stopping):
            self._record(outcome)  # saves the checkpoint
            self._show()
            self._bar.update()
            if self._projection:
                self._projection.step()
            self._done += 1
            if self._max_children is not None and self._done >= self._max_children:
                raise StopRun
        if len(rewards) < len(archs):  # stopped
            raise StopRun
        return [rewards[str(k)] for k in range(len(archs))]

    def end_batch(self, rewards: list[float]) -> None:
        """Log the batch's rewards; the next batch starts; the checkpoint is written."""
        reward = torch.tensor(rewards)
        self.logger.scalars({"child/reward_mean": reward.mean(), "child/reward_max": reward.max()}, self.batch + 1)
        self.children += len(rewards)
        self.batch, self.pending = self.batch + 1, None
        self._save()

    # --- the machinery ---------------------------------------------------------------------------
    def _stopping(self) -> bool:
        return bool(self._stop) or (self._deadline is not None and time.monotonic() >= self._deadline)

    def _show(self) -> None:
        """The children of this batch still queued or training, and the best so far."""
        waiting = len(self.pending["archs"]) - len(self.pending["rewards"])
        best = f", best reward {self.best['reward']:.4g}" if self.best else ""
        self._bar.set_postfix_str(f"{self.describe()}{waiting} in flight{best}")

    def _child_config(self, index: int) -> dict:
        """Every child gets the same recipe and its own seed; the shared-weights optimiser settings
        of the search config are its training recipe."""
        c = self.cfg
        return to_dict(TrainConfig(
            # absolute: a Ray worker does not start in this process's directory
            task=c.task, data_dir=absolute_data_dir(c.data_dir), seed=c.seed * 100_003 + index, device=c.device,
            epochs=c.child_epochs, batch_size=c.batch_size, bptt=c.bptt, eval_batch_size=c.eval_batch_size,
            eval_max_batches=c.eval_max_batches, max_steps=c.child_max_steps, log_every=10**9,
            num_valid=c.num_valid, cutout=c.cutout, aux_weight=c.aux_weight, model=c.model, optim=c.shared))

    def _record(self, outcome: dict) -> None:
        k, result, error = outcome["id"], outcome["result"], outcome["error"]
        reward = FLOOR_REWARD if error or result is None else nas_reward(result, c=self.reward_c)
        self.pending["rewards"][str(k)] = reward
        metrics = [_not_nan(m) for m in result["metrics"]] if result else []
        self.pending["metrics"][str(k)] = metrics[-1] if metrics and not error else None
        extra = self.pending["extras"][k] if "extras" in self.pending else {}
        record = {"step": self.batch, "phase": "child", "child": self.children + k,
                  "arch": self.pending["archs"][k], **extra, "reward": reward,
                  "metric": metrics[-1] if metrics else None,
                  "metric_name": result["metric"] if result else None,
                  "metrics": metrics, "seconds": outcome.get("seconds"),
                  "attempt": outcome["attempt"], "error": error}
        self.logger.arch(record)  # a kill before the save below leaves a record that resume takes back
        better = error is None and (self.best is None or self.rank(record) > self.rank(self.best))
        if better:
            self.best = record
        self._save()
        if better:  # after the save: resume writes arch.json again from the checkpoint's best
            self.write_best()
        if self.progress:
            name = result["metric"] if result else None
            tqdm.write(f"child {self.children + k + 1}  reward {reward:.4g}  {name or 'metric'} "
                       f"{format_metric(name, record['metric'])}  {outcome['seconds']:.1f} s  "
                       f"worker {outcome['worker']}" + (f"  error: {error}" if error else ""), file=sys.stderr)

    @property
    def reward_c(self) -> float:
        """c of the language-model reward c / valid_ppl^2: the controller's, where the strategy has one."""
        controller = getattr(self.cfg.section, "controller", None)
        return controller.reward_c if controller is not None else 80.0

    def best_json(self) -> dict:
        """arch.json of the best child."""
        arch = self.parse(self.best["arch"])
        return arch.to_json(
            task=self.cfg.task, data_dir=absolute_data_dir(self.cfg.data_dir), metric=_not_nan(self.best.get("metric")),
            metric_name=self.best.get("metric_name"), reward=self.best["reward"],
            how=f"best reward among the children ({self.picked}) trained from scratch for "
                f"{self.cfg.child_epochs} epoch(s), scored on the validation split")

    def write_best(self) -> None:
        self.logger.write_json("arch.json", self.best_json())

    def check_success(self) -> None:
        """EnasError when no child finished without an error: the search has no result (no arch.json)."""
        if self.best is not None:
            return
        records = read_archs(self.run_dir)
        errors = [r["error"] for r in records if r.get("error")]
        if not records:
            raise EnasError("no child finished training, so the search has no result; give it more time "
                            "(a larger budget or fewer steps per child)")
        raise EnasError(f"none of the {len(records)} children finished without an error (the first: {errors[0]}), "
                        f"so the search has no result: see {self.run_dir / 'archs.jsonl'}, fix the cause and "
                        f"start over with --overwrite")

    # --- checkpoints and resume -----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"batch": self.batch, "children": self.children, "pending": self.pending, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.batch, self.children = int(state["batch"]), int(state["children"])
        self.pending, self.best = state["pending"], state["best"]
        if self.pending is not None:
            for arch in self.pending["archs"]:
                self.parse(arch)
            self.pending["rewards"] = {str(k): float(r) for k, r in self.pending["rewards"].items()}
            self.pending.setdefault("metrics", {})  # a checkpoint written before metrics were kept
        if self.best is not None:
            self.parse(self.best["arch"])

    def take_back(self, records: list[dict]) -> None:
        """Children of the pending batch whose record a kill kept out of the checkpoint (it came after
        the append to archs.jsonl, before the save): they finished, so their rewards are taken from
        their records instead of training them again."""
        if self.pending is None:
            return
        archs, rewards = self.pending["archs"], self.pending["rewards"]
        for record in records:
            k = record.get("child", -1) - self.children
            reward = record.get("reward")
            if (record["step"] == self.batch and 0 <= k < len(archs) and str(k) not in rewards
                    and record.get("arch") == archs[k] and type(reward) in (int, float) and math.isfinite(reward)):
                rewards[str(k)] = float(reward)
                metric = record.get("metric")
                self.pending["metrics"][str(k)] = float(metric) if type(metric) in (int, float) and \
                    record.get("error") is None else None
                if record.get("error") is None and (self.best is None or self.rank(record) > self.rank(self.best)):
                    self.best = record

    def recorded(self) -> Callable[[dict], bool]:
        """A test for RunLogger.keep_archs: the records the checkpoint accounts for, each child once (those
        of earlier batches, and the children of the pending batch whose reward it holds)."""
        rewards = self.pending["rewards"] if self.pending else {}
        seen = set()

        def keep(record: dict) -> bool:
            child = record.get("child")
            if isinstance(child, int) and child in seen:
                return False
            recorded = record["step"] < self.batch or (
                record["step"] == self.batch and isinstance(child, int) and str(child - self.children) in rewards)
            if recorded and isinstance(child, int):
                seen.add(child)
            return recorded
        return keep


class ChildPoolSearch(Strategy):
    """A search whose children are trained from scratch (`self.pool`), with a policy of the subclass's."""

    trains_children = True
    picked: ClassVar[str] = ""  # how the children are chosen, in words

    def __init__(self, cfg, run_dir: str | Path, progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.space = get_space(cfg.space, **cfg.space_options)
        self.logger = RunLogger(self.run_dir)
        self.pool = ChildPool(cfg, self.run_dir, self.space, self.logger, progress, self.picked)

    @classmethod
    def check(cls, cfg) -> None:
        """What every child needs, checked once before the first: the device, the executor and the data
        (a DataError or ConfigError here, rather than one failed child after another)."""
        _check_config(cfg)
        resolve_device(cfg.device)
        check_executor(cfg.executor, cfg.workers, cfg.cpus_per_child, cfg.gpus_per_child,
                       address=cfg.ray_address or None)
        if not (cfg.executor == "ray" and cfg.ray_address):  # a cluster's nodes may hold the data elsewhere
            make_task(cfg, torch.device("cpu"))

    # --- checkpoints --------------------------------------------------------------------------
    def policy_state(self) -> dict:
        """The policy's part of the checkpoint."""
        return {}

    def load_policy_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {"config": to_dict(self.cfg), **self.pool.state_dict(), "rng": ckpt.rng_state(),
                **self.policy_state()}

    def load_state_dict(self, state: dict) -> None:
        self.pool.load_state_dict(state)
        self.load_policy_state(state)
        ckpt.set_rng_state(state["rng"])

    def save(self) -> None:
        ckpt.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", self.state_dict())

    def continue_from(self, records: list[dict]) -> None:
        self.pool.take_back(records)
        self.logger.keep_archs(self.pool.recorded())
        self.logger.purge_step = self.pool.batch + 1  # TensorBoard drops what came after the checkpoint
        if self.pool.best is not None:
            self.pool.write_best()

    # --- what the commands ask of a run -----------------------------------------------------------
    def describe_placement(self) -> str:
        c = self.cfg
        where = f" ({count_of(c.workers, 'worker')})" if c.executor == "local" else \
            f" ({'Ray at ' + c.ray_address if c.ray_address else 'a Ray instance started here'})"
        return f"; children train on the {c.executor} executor{where}"

    def finish(self) -> None:
        """The best child's cell in TensorBoard (what `enas derive` does for a weight-sharing run) and the
        HPARAMS row; EnasError when no child finished (the search has no result)."""
        best = self.pool.best
        if best is not None:
            arch = self.pool.parse(best["arch"])
            self.logger.text("derive/arch", cell_text(arch.space, arch), self.pool.batch)
            self.logger.figure("derive/cell", cell_figure(arch.space, arch), self.pool.batch)
            self.logger.hparams(run_hparams(self.cfg, "search"), self.hparams(), self.pool.batch)
        self.logger.close()
        self.pool.check_success()

    def hparams(self) -> dict:
        best = self.pool.best
        return {f"hparams/best_child_{best.get('metric_name') or 'metric'}": _not_nan(best.get("metric")),
                "hparams/best_child_reward": best["reward"]}

    def result(self) -> dict:
        self.pool.check_success()
        return self.pool.best_json()

    def summary(self, run: Path, seconds: float) -> tuple[list[str], dict]:
        c, best = self.cfg, self.pool.best  # there is one: see ChildPool.check_success
        failed = sum(r.get("error") is not None for r in self.logger.read_archs())
        data = {"run": str(run), "strategy": c.strategy, "space": c.space, "task": c.task,
                "seconds": round(seconds, 1), "children": self.pool.children, "failed": failed, "best": best,
                "next": next_train(run, c)}
        lines = [f"{c.strategy} search of {c.space} on {c.task} finished in {seconds:.0f} s: "
                 f"{count_of(self.pool.children, 'child', 'children')} trained from scratch"
                 + (f", {failed} failed" if failed else ""),
                 f"  best child: reward {best['reward']:.4g}, valid {best.get('metric_name') or 'metric'} "
                 f"{format_metric(best.get('metric_name'), best['metric'])}",
                 f"  arch: {best['arch']}",
                 f"  written to {run}: arch.json (the best child), archs.jsonl (every child), config.json, "
                 f"TensorBoard events",
                 f"  next: {data['next']}"]
        return lines, data


def _not_nan(value):
    """A child's metric as recorded: a NaN (a diverged child) becomes inf, never NaN in a JSON file."""
    return math.inf if isinstance(value, float) and math.isnan(value) else value


__all__ = ["ChildPool", "ChildPoolSearch", "FLOOR_REWARD"]
