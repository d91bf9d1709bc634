"""Full NAS without weight sharing (Zoph & Le 2017), and random search without it.

Each controller update samples m = controller.num_aggregate architectures; every child is built by
`build_child` with fresh weights (nothing shared, nothing inherited), trained from scratch for
`child_epochs` by an executor (in process, worker processes or Ray tasks), and scored on the
validation split. Rewards follow the NAS paper (`nas_reward`); the controller update shared with
ENAS (policy_gradient.py: REINFORCE, moving-average baseline, skip penalty, gradient clip) runs once
all m children of an update have finished. With
`uniform=True` (random search) architectures are drawn uniformly and no controller is trained.

The checkpoint is rewritten after every finished child, so a search killed mid-update resumes
without training again the children it already has. A stop (Ctrl-C, SIGTERM) abandons the children
still training: they are not recorded, and a resumed search trains them again. Each child's
archs.jsonl record carries its number in the search ("child"); a record written just before a kill
and not yet in the checkpoint is taken back on resume (its child is finished, so it is not trained
again), and every child is recorded once.

The children of update u are drawn with a generator seeded from (seed, u), so they do not depend on
where earlier children trained or on a resume: a resumed search equals an uninterrupted one.

Before the first child (`check`, called by `strategies.check_search` and on resume) the search checks
what every child needs (the device, the data, the executor), so a bad setting is one error, not a
failed child after another.
"""
from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .. import checkpoint as ckpt
from ..arch import Arch
from ..child_training import child_payload, nas_reward
from ..config import SearchConfig, TrainConfig, to_dict
from ..errors import EnasError
from ..executors import check_executor, make_executor
from ..hparams import run_hparams
from ..interrupt import stop_on_interrupt
from ..logger import RunLogger, cell_figure, cell_text, format_metric
from ..policy_gradient import reinforce
from ..rundir import read_archs
from ..spaces import get_space
from ..tasks import make_task
from .common import make_controller, reading_checkpoint, resolve_device, restore, run_header, seed_everything

FLOOR_REWARD = 0.0  # what a failed child (error, NaN, out of memory, dead worker) earns


class NasSearch:
    def __init__(self, cfg: SearchConfig, run_dir: str | Path, progress: bool = True, uniform: bool = False):
        self.cfg, self.run_dir, self.progress, self.uniform = cfg, Path(run_dir), progress, uniform
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.space = get_space(cfg.space, **cfg.space_options)
        self.controller, self.ctrl_opt = make_controller(self.space, cfg.controller, torch.device("cpu"))
        self.rng = random.Random(cfg.seed)            # uniform draws of random search
        self.update, self.children = 0, 0
        self.baseline = torch.zeros(())             # the moving average of the rewards (policy_gradient.py)
        self.pending: dict | None = None              # {"archs": [str], "rewards": {index: float}}
        self.best: dict | None = None                 # the archs.jsonl record of the best child so far
        self.logger = RunLogger(self.run_dir)

    @staticmethod
    def check(cfg: SearchConfig) -> None:
        """What every child needs, checked once before the first: the device, the executor and the data
        (a DataError or ConfigError here, rather than one failed child after another)."""
        resolve_device(cfg.device)
        check_executor(cfg.executor, cfg.workers, cfg.cpus_per_child, cfg.gpus_per_child)
        if not (cfg.executor == "ray" and cfg.ray_address):  # a cluster's nodes may hold the data elsewhere
            make_task(cfg, torch.device("cpu"))

    # --- one update: m children, then REINFORCE ---------------------------------------------
    def _draw(self, m: int) -> list[str]:
        if self.uniform:
            return [str(self.space.sample(rng=self.rng)) for _ in range(m)]
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.update)
        with torch.no_grad():
            return [str(a) for a in self.controller.sample(m, generator=generator).archs(self.space)]

    def _child_config(self, index: int) -> dict:
        """Every child gets the same recipe and its own seed; the shared-weights optimiser settings
        of the search config are its training recipe."""
        c = self.cfg
        return to_dict(TrainConfig(
            task=c.task, data_dir=c.data_dir, seed=c.seed * 100_003 + index, device=c.device,
            epochs=c.child_epochs, batch_size=c.batch_size, bptt=c.bptt, eval_batch_size=c.eval_batch_size,
            eval_max_batches=c.eval_max_batches, max_steps=c.child_max_steps, log_every=10**9,
            num_valid=c.num_valid, cutout=c.cutout, aux_weight=c.aux_weight, model=c.model, optim=c.shared))

    def run(self, max_children: int | None = None, deadline: float | None = None) -> bool:
        """Run every update; True when finished, False when stopped (Ctrl-C or SIGTERM, max_children, or
        the time.monotonic() deadline of a budgeted comparison: children still training are dropped)."""
        c = self.cfg
        done = 0
        executor = make_executor(c.executor, workers=c.workers, num_cpus=c.cpus_per_child,
                                 num_gpus=c.gpus_per_child, address=c.ray_address or None)
        finished = self.children + len(self.pending["rewards"] if self.pending else ())
        bar = tqdm(total=c.nas_updates * c.controller.num_aggregate, initial=finished, unit=" child",
                   desc=c.strategy, dynamic_ncols=True, disable=not self.progress)
        with executor, stop_on_interrupt() as stop, bar:
            def stopping() -> bool:
                return bool(stop) or (deadline is not None and time.monotonic() >= deadline)

            def show() -> None:  # children of this update still queued or training, and the best so far
                waiting = len(self.pending["archs"]) - len(self.pending["rewards"])
                best = f", best reward {self.best['reward']:.4g}" if self.best else ""
                bar.set_postfix_str(f"{waiting} in flight{best}")

            while self.update < c.nas_updates:
                if self.pending is None:
                    self.pending = {"archs": self._draw(c.controller.num_aggregate), "rewards": {}}
                    self.save()
                archs, rewards = self.pending["archs"], self.pending["rewards"]
                for k, arch in enumerate(archs):
                    if str(k) not in rewards:  # resumed: only the children not finished yet
                        index = self.children + k
                        executor.submit({"id": k, "attempt": 0, "payload": child_payload(
                            Arch.parse(self.space, arch), self._child_config(index))})
                show()
                for outcome in executor.results(stopping):
                    self._record(outcome)  # saves the checkpoint
                    show()
                    bar.update()
                    done += 1
                    if max_children is not None and done >= max_children:
                        return False
                if len(rewards) < len(archs):  # stopped; the checkpoint has every child recorded so far
                    return False
                self._reinforce()
        self.logger.flush()
        return True

    def _record(self, outcome: dict) -> None:
        k, result, error = outcome["id"], outcome["result"], outcome["error"]
        reward = FLOOR_REWARD if error or result is None else nas_reward(result, c=self.cfg.controller.reward_c)
        self.pending["rewards"][str(k)] = reward
        metrics = [_not_nan(m) for m in result["metrics"]] if result else []
        record = {"step": self.update, "phase": "child", "child": self.children + k,
                  "arch": self.pending["archs"][k], "reward": reward, "metric": metrics[-1] if metrics else None,
                  "metric_name": result["metric"] if result else None,
                  "metrics": metrics, "seconds": outcome.get("seconds"),
                  "attempt": outcome["attempt"], "error": error}
        self.logger.arch(record)  # a kill before the save below leaves a record that resume takes back
        better = error is None and (self.best is None or reward > self.best["reward"])
        if better:
            self.best = record
        self.save()
        if better:  # after the save: resume writes arch.json again from the checkpoint's best
            self._write_best()
        if self.progress:
            name = result["metric"] if result else None
            tqdm.write(f"child {self.children + k + 1}  reward {reward:.4g}  {name or 'metric'} "
                       f"{format_metric(name, record['metric'])}  {outcome['seconds']:.1f} s  "
                       f"worker {outcome['worker']}" + (f"  error: {error}" if error else ""), file=sys.stderr)

    def _reinforce(self) -> None:
        c = self.cfg.controller
        archs, rewards = self.pending["archs"], self.pending["rewards"]
        reward = torch.tensor([rewards[str(k)] for k in range(len(archs))])
        step = self.update + 1
        if not self.uniform:
            sample = self.controller.log_prob([Arch.parse(self.space, a) for a in archs])
            update = reinforce(self.controller, self.ctrl_opt, sample, reward, self.baseline, c)
            self.baseline = update.baseline
            self.logger.scalars(update.scalars, step)
        self.logger.scalars({"child/reward_mean": reward.mean(), "child/reward_max": reward.max()}, step)
        self.children += len(archs)
        self.update, self.pending = step, None
        self.save()

    def _write_best(self) -> None:
        arch = Arch.parse(self.space, self.best["arch"])
        what = "random" if self.uniform else "sampled by the controller"
        self.logger.write_json("arch.json", arch.to_json(
            task=self.cfg.task, metric=_not_nan(self.best.get("metric")), metric_name=self.best.get("metric_name"),
            reward=self.best["reward"],
            how=f"best reward among the children ({what}) trained from scratch for "
                f"{self.cfg.child_epochs} epoch(s), scored on the validation split"))

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

    def finish(self) -> None:
        """The best child's cell in TensorBoard (what `enas derive` does for a weight-sharing run)."""
        if self.best is not None:
            arch = Arch.parse(self.space, self.best["arch"])
            self.logger.text("derive/arch", cell_text(self.space, arch), self.update)
            self.logger.figure("derive/cell", cell_figure(self.space, arch), self.update)
            name = self.best.get("metric_name") or "metric"
            self.logger.hparams(run_hparams(self.cfg, "search"), {f"hparams/best_child_{name}": _not_nan(
                self.best.get("metric")), "hparams/best_child_reward": self.best["reward"]}, self.update)
        self.logger.close()

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"config": to_dict(self.cfg), "uniform": self.uniform, "update": self.update,
                "children": self.children, "baseline": self.baseline, "pending": self.pending, "best": self.best,
                "controller": self.controller.state_dict(), "ctrl_opt": self.ctrl_opt.state_dict(),
                "rng": {"random": self.rng.getstate(), "torch": ckpt.rng_state()}}

    def save(self) -> None:
        ckpt.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", self.state_dict())

    @classmethod
    def start(cls, cfg: SearchConfig, run_dir, progress: bool = True, uniform: bool = False) -> "NasSearch":
        """A new search; writes RUN/config.json."""
        search = cls(cfg, run_dir, progress, uniform)
        search.logger.write_json("config.json", run_header(to_dict(cfg)))
        return search

    @classmethod
    def resume(cls, run_dir, overrides: list[str] = (), progress: bool = True) -> "NasSearch":
        """Continue an interrupted search with the config of RUN/config.json (the command line on top)
        and the state of its checkpoint; children recorded in archs.jsonl are not trained again."""
        records = read_archs(run_dir)  # refuses an altered archs.jsonl before anything is rewritten
        cfg, state = restore(SearchConfig, run_dir, overrides)
        cls.check(cfg)
        search = cls(cfg, run_dir, progress, uniform=cfg.strategy == "random")
        with reading_checkpoint(Path(run_dir) / "checkpoints" / "last.pt"):
            search.update, search.children = int(state["update"]), int(state["children"])
            search.baseline = state["baseline"].reshape(())
            search.pending, search.best = state["pending"], state["best"]
            if search.pending is not None:
                for arch in search.pending["archs"]:
                    Arch.parse(search.space, arch)
                search.pending["rewards"] = {str(k): float(r) for k, r in search.pending["rewards"].items()}
            if search.best is not None:
                Arch.parse(search.space, search.best["arch"])
            search.controller.load_state_dict(state["controller"])
            search.ctrl_opt.load_state_dict(state["ctrl_opt"])
            ckpt.set_random_state(search.rng, state["rng"]["random"])
            ckpt.set_rng_state(state["rng"]["torch"])
        search._take_back(records)
        search.logger.keep_archs(search._recorded())
        search.logger.purge_step = search.update + 1  # TensorBoard drops what came after the checkpoint
        search.logger.write_json("config.json", run_header(to_dict(cfg)))
        if search.best is not None:
            search._write_best()
        return search

    def _take_back(self, records: list[dict]) -> None:
        """Children of the pending update whose record a kill kept out of the checkpoint (it came after
        the append to archs.jsonl, before the save): they finished, so their rewards are taken from
        their records instead of training them again."""
        if self.pending is None:
            return
        archs, rewards = self.pending["archs"], self.pending["rewards"]
        for record in records:
            k = record.get("child", -1) - self.children
            reward = record.get("reward")
            if (record["step"] == self.update and 0 <= k < len(archs) and str(k) not in rewards
                    and record.get("arch") == archs[k] and type(reward) in (int, float) and math.isfinite(reward)):
                rewards[str(k)] = float(reward)
                if record.get("error") is None and (self.best is None or reward > self.best["reward"]):
                    self.best = record

    def _recorded(self):
        """A test for RunLogger.keep_archs: the records the checkpoint accounts for, each child once (those
        of earlier updates, and the children of the pending update whose reward it holds)."""
        rewards = self.pending["rewards"] if self.pending else {}
        seen = set()

        def keep(record: dict) -> bool:
            child = record.get("child")
            if isinstance(child, int) and child in seen:
                return False
            recorded = record["step"] < self.update or (
                record["step"] == self.update and isinstance(child, int) and str(child - self.children) in rewards)
            if recorded and isinstance(child, int):
                seen.add(child)
            return recorded
        return keep


def _not_nan(value):
    """A child's metric as recorded: a NaN (a diverged child) becomes inf, never NaN in a JSON file."""
    return math.inf if isinstance(value, float) and math.isnan(value) else value
