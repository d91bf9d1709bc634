"""The shared-weights engine under every weight-sharing strategy: the supernet and its optimiser, the
shared step and the reward evaluation (replayed as CUDA graphs on a GPU), the architectures drawn a
log window at a time, the resumable cursor, logging, checkpoints and data-parallel runs.

A strategy's loop (enas/strategies/enas.py) reads like its paper; what it calls here is machinery:

    arch = engine.next_arch(policy.sample)   # a row of the window drawn at the window's first step
    engine.train_step(arch)                  # one SGD step of the shared weights on that architecture
    metric = engine.score(tokens)            # the metric of n architectures on the next reward batch
    engine.validate(policy.best)             # the epoch's validation on the shared weights

`engine.loop(...)` advances the cursor (epoch, phase, step within the phase) one unit at a time and
keeps it in the checkpoint, so an interrupted run resumes exactly where it stopped; it owns the
progress bar, the stop (Ctrl-C, SIGTERM, a deadline, a unit budget) and the divergence check.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from tqdm import tqdm

from .. import checkpoint as ckpt
from ..arch import Arch
from ..cuda_graph import CapturedStep
from ..errors import ConfigError, Diverged
from ..interrupt import stop_on_interrupt
from ..logger import NullLogger, RunLogger, format_metric
from ..nn import build_supernet
from ..optim import guarded_step, lr_at, make_sgd, set_lr
from ..projection import Projection
from ..runtime import resolve_device, seed_everything
from ..spaces import get_space
from ..tasks import make_task, task_class
from .distributed import Distributed

MAX_WINDOW = 100  # architectures drawn at once for the shared steps ahead


class StopRun(Exception):
    """Raised out of `Loop.units` when the run must stop between units; `SharedWeights.loop` saves."""


class SharedWeights:
    """The supernet of a search, its optimiser, its task and its run directory's cursor and logs."""

    def __init__(self, cfg, run_dir: str | Path, progress: bool = True):
        self.dist = Distributed()
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress and self.dist.is_main
        seed_everything(cfg.seed)  # the same initial weights on every rank
        self.device = self.dist.device(resolve_device(cfg.device))
        self.space = get_space(cfg.space, **cfg.space_options)
        if self.dist.enabled and not task_class(cfg.task).data_parallel:
            raise ConfigError(f"task {cfg.task} searches on one device: it does not run data-parallel")
        self.task = make_task(cfg, self.device, rank=self.dist.rank)
        self.supernet = build_supernet(self.space, **self.task.model_kwargs(cfg.model)).to(self.device)
        self.shared_model = self.dist.wrap(self.supernet)  # DistributedDataParallel under torchrun
        # The architecture stays on the device where the supernet only indexes with it; then, on a
        # GPU and one process, the shared step and the reward evaluation are replayed as CUDA graphs
        # (enas/cuda_graph.py), and the shared update is dense (row-sparse gradients are host-side
        # bookkeeping a graph cannot hold; on a GPU the dense update is cheap next to the launches).
        self.device_arch = getattr(self.supernet, "device_arch", False)
        graphs = cfg.cuda_graphs and self.device.type == "cuda" and self.device_arch and not self.dist.enabled
        self.optimizer = make_sgd(self.supernet, cfg.shared, row_sparse=cfg.sparse_update and not graphs)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        self._captured_step = CapturedStep(self._shared_body, enabled=graphs)
        self._captured_reward = CapturedStep(self._reward_body, enabled=graphs)
        self._arch_window, self._arch_pos, self._arch_host = torch.zeros(0, dtype=torch.long), 0, None
        # the cursor and counters (all in the checkpoint)
        self.epoch, self.phase, self.step = 0, "shared", 0
        self.shared_step = self.policy_step = 0
        self.skipped = torch.zeros((), dtype=torch.long, device=self.device)
        self._window = self._new_window()
        self._diverged_since: int | None = None  # the first step of a window whose every step was skipped
        self._logged = False  # a log window closed at the last shared step (the loop checks divergence then)
        self.shared_losses: list[tuple[int, float]] = []  # (shared step, mean loss of its log window)
        self.logger = RunLogger(self.run_dir) if self.dist.is_main else NullLogger()

    @property
    def global_step(self) -> int:
        """The x axis of every TensorBoard tag: shared steps and policy updates so far."""
        return self.shared_step + self.policy_step

    @property
    def shared_steps(self) -> int:
        """Shared steps per epoch: the config's, or one pass over the training data."""
        return self.cfg.shared_steps or self.task.steps_per_epoch

    # --- the four calls of a strategy's loop ---------------------------------------------------
    def next_arch(self, draw: Callable[[int], torch.Tensor]):
        """The architecture of this shared step. `draw(n)` gives n architectures [n, L] on the device;
        they are drawn a window at a time (up to log_every steps, at most MAX_WINDOW, within the
        phase), so that a policy's sampling launches are paid once per window. A supernet that reads
        its architecture on the device gets the row [L]; one that decides in Python which ops run gets
        an Arch, the window read to the host at once. Under torchrun rank 0 draws each step's
        architecture and every rank reads the same row."""
        if self.dist.enabled:
            if self.dist.is_main:
                arch = draw(1)[0]
            else:
                arch = torch.empty(self.space.num_tokens, dtype=torch.long, device=self.device)
            return self.dist.broadcast_arch(arch)
        if self._arch_pos >= len(self._arch_window):
            n = max(1, min(self.cfg.log_every, self.shared_steps - self.step, MAX_WINDOW))
            self._arch_window, self._arch_pos = draw(n), 0  # [n, L] on the device
            self._arch_host = self._host_archs(self._arch_window)
        i, self._arch_pos = self._arch_pos, self._arch_pos + 1
        return self._arch_window[i] if self._arch_host is None else self._arch_host[i]

    def next_batch(self):
        """The next training batch, for a strategy that uses it before the step does (DARTS's unrolled
        step): images (x, y); a recurrent task (x, y, the state it starts from)."""
        return self.task.train_inputs(self.supernet)

    def train_step(self, arch, batch=None) -> None:
        """One SGD step of the shared weights on a training batch (`batch`, else the next one) through
        `arch` (only its slices get gradients; DARTS: mixing weights, every op); the loss is summed on
        the device and read once per log window."""
        cfg = self.cfg
        if self.step == 0:
            set_lr(self.optimizer, lr_at(cfg.shared, self.epoch))
        self.supernet.train()
        batch = self.next_batch() if batch is None else batch
        if self.task.carries_state:  # the recurrent tasks: one step, captured as a CUDA graph on a GPU
            x, y, hidden = batch
            loss, ok, hidden = self._captured_step(arch, x, y, hidden, key=self.optimizer.param_groups[0]["lr"])
            self.task.keep_state(hidden)
            items, correct = y.numel(), None
        else:
            with self.autocast():
                loss, items, correct = self.task.train_loss(self.shared_model, arch, batch)
            ok = guarded_step(self.optimizer, loss, cfg.shared)
        w = self._window
        w["loss"] += torch.where(ok, loss.detach(), 0.0)
        w["ok"] += ok
        if correct is not None:
            w["correct"] += correct
        self.skipped += ~ok
        w["items"] += items
        self.shared_step += 1
        if self.shared_step % cfg.log_every == 0:
            self._log_shared()

    def score(self, tokens: torch.Tensor) -> torch.Tensor:
        """The task's metric [n] of every architecture of tokens [n, L] on the next reward batch, in one
        forward on the shared weights (a CUDA graph on a GPU)."""
        batch = self.task.next_reward_batch()
        return self._captured_reward(tokens, *batch)[0].clone()

    def validate(self, best: Callable[[], torch.Tensor]) -> float | None:
        """The epoch's validation on the shared weights of the architecture [L] `best()` gives (on rank 0
        only): logged, shown on stderr, and returned (None on the other ranks)."""
        if not self.dist.is_main:
            return None
        arch = best()
        valid = self.task.evaluate(self.supernet, arch, "valid", self.cfg.eval_max_batches)
        self.logger.scalars({f"valid/{self.task.metric}": valid, "epoch": self.epoch + 1}, self.global_step)
        self.logger.text("valid/arch", str(Arch(self.space, arch.tolist())), self.global_step)
        if self.progress:
            m = self.task.metric
            tqdm.write(f"epoch {self.epoch + 1}/{self.cfg.epochs}  valid {m} {format_metric(m, valid)} "
                       f"on the shared weights", file=sys.stderr)
        return valid

    # --- the two bodies a GPU replays as CUDA graphs (enas/cuda_graph.py) ----------------------
    def _shared_body(self, arch, x, y, hidden):
        """One shared step of a recurrent task: arch [L], x, y [T, B], hidden [B, S*H] ->
        (loss 0-d, ok 0-d bool, next hidden [B, S*H] in hidden's dtype)."""
        with self.autocast():
            loss, hidden_next = self.task.train_forward(self.shared_model, arch, x, y, hidden)
        ok = guarded_step(self.optimizer, loss, self.cfg.shared)
        return loss.detach(), ok, hidden_next.detach().to(hidden.dtype)

    def _reward_body(self, tokens, *batch):
        """The metric of every architecture of tokens [n, L] on one reward batch: ([n],)."""
        with self.autocast():
            return (self.task.score_many(self.supernet, tokens, batch),)

    def autocast(self):
        """bf16 autocast of forwards when `bf16` is set (matmuls in bfloat16, losses in float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _host_archs(self, window: torch.Tensor) -> list[Arch] | None:
        """The window [n, L] as Archs for a supernet that picks its ops in Python (one host read),
        None for one that reads the architecture on the device."""
        return None if self.device_arch else [Arch(self.space, tuple(t)) for t in window.tolist()]

    # --- the loop -------------------------------------------------------------------------------
    @contextmanager
    def loop(self, phases: dict[str, tuple[int, str]], save: Callable[[], None], max_units: int | None = None,
             deadline: float | None = None) -> Iterator["Loop"]:
        """The cursor of a run whose epochs are `phases` in order ({name: (units per epoch, unit name)}).
        The block runs the epochs; a stop between units (Ctrl-C, SIGTERM, the time.monotonic()
        `deadline` of a budgeted comparison, `max_units`) saves and leaves it with `finished` False. A
        finished run saves and, under torchrun, writes each rank's weight checksum."""
        per_epoch = sum(n for n, _ in phases.values())
        order = list(phases)
        done = self.epoch * per_epoch + sum(phases[p][0] for p in order[:order.index(self.phase)]) + self.step
        with stop_on_interrupt() as stop, tqdm(total=self.cfg.epochs * per_epoch, initial=done,
                                               unit=f" {phases[self.phase][1]}", dynamic_ncols=True,
                                               desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                                               disable=not self.progress) as bar:
            # a budgeted run (`enas compare`) ends at its deadline: no projection
            projection = Projection(self.cfg.epochs * per_epoch - done, str(self.device)) if deadline is None else None
            loop = Loop(self, phases, save, stop, bar, projection, max_units, deadline)
            try:
                yield loop
            except StopRun:
                save()
                return
            loop.finished = True
            save()
            if self.dist.enabled:
                sums = self.dist.checksums(self.supernet)
                self.logger.write_json("distributed.json", {"world_size": self.dist.world, "weight_checksums": sums,
                                                            "in_sync": len(set(sums)) == 1})
            self.logger.flush()

    def _check_divergence(self, save: Callable[[], None]) -> None:
        """After a log window: a window whose every shared step had a non-finite loss saves the
        checkpoint and raises Diverged (on every rank when it happened on one)."""
        if not self._logged:
            return
        self._logged = False
        if self.dist.any(self._diverged_since is not None):
            save()
            self.logger.flush()
            raise Diverged(f"the shared loss is not finite since step {self._diverged_since} (every step "
                           f"since was skipped); lower shared.lr (now {self.cfg.shared.lr:g}), then continue "
                           f"with --resume --set shared.lr=... or start over with --overwrite (checkpoint "
                           f"saved in {self.run_dir / 'checkpoints' / 'last.pt'})")

    # --- logging ----------------------------------------------------------------------------
    def _new_window(self) -> dict:
        z = torch.zeros((), device=self.device)
        return {"loss": z.clone(), "ok": z.clone(), "correct": z.clone(), "items": 0, "time": time.perf_counter()}

    def _log_shared(self) -> None:
        w, self._window = self._window, self._new_window()
        total, ok = torch.stack([w["loss"], w["ok"]]).tolist()  # the one host sync, at log time
        loss = total / ok if ok else float("inf")  # no step of the window had a finite loss
        if not ok and self._diverged_since is None:
            self._diverged_since = max(1, self.shared_step - self.cfg.log_every + 1)
        self._logged = True
        self.shared_losses.append((self.shared_step, loss))
        seconds = time.perf_counter() - w["time"]
        m = self.task.metric
        metric = self.task.window_metric(loss, w["correct"].item(), w["items"])
        self.logger.scalars({"shared/loss": loss, f"shared/{m}": metric,
                             "shared/lr": self.optimizer.param_groups[0]["lr"],
                             "shared/throughput": w["items"] / max(seconds, 1e-9),
                             "shared/skipped_steps": self.skipped}, self.global_step)

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "phase": self.phase, "step": self.step, "shared_step": self.shared_step,
                "policy_step": self.policy_step, "skipped": self.skipped.cpu(),
                "supernet": self.supernet.state_dict(), "shared_opt": self.optimizer.state_dict(),
                "task": self.task.state_dict(), "rng": ckpt.rng_state(),
                "arch_window": self._arch_window[self._arch_pos:].cpu()}  # drawn, not yet trained on

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.phase, self.step = state["epoch"], state["phase"], state["step"]
        self.shared_step, self.policy_step = state["shared_step"], state["policy_step"]
        self.skipped = state["skipped"].to(self.device)
        self.supernet.load_state_dict(state["supernet"])
        self.optimizer.load_state_dict(state["shared_opt"])
        self.task.load_state_dict(state["task"])
        ckpt.set_rng_state(state["rng"])
        self._arch_window, self._arch_pos = state["arch_window"].to(self.device), 0
        self._arch_host = self._host_archs(self._arch_window)
        self._window = self._new_window()

    def save(self, state: dict) -> None:
        """Write the checkpoint (rank 0 only): `state`, the strategy's whole state."""
        if self.dist.is_main:
            ckpt.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", state)


class Loop:
    """The cursor of `SharedWeights.loop`, advanced by the strategy's loop one unit at a time."""

    def __init__(self, engine: SharedWeights, phases: dict[str, tuple[int, str]], save: Callable[[], None],
                 stop, bar, projection: Projection | None, max_units: int | None, deadline: float | None):
        self.engine, self.phases, self.order, self.save = engine, phases, list(phases), save
        self.stop, self.bar, self.projection = stop, bar, projection
        self.max_units, self.deadline = max_units, deadline
        self.units_run, self.finished = 0, False
        m = engine.task.metric
        self.shown = [("loss", "shared/loss"), (m, f"shared/{m}")] + [
            (name, f"{phase}/{name}") for phase in self.order[1:] for name in ("reward", "entropy")]

    @property
    def epoch(self) -> int:
        return self.engine.epoch

    def units(self, phase: str) -> Iterator[None]:
        """Yields once per unit of `phase` still to run in this epoch: all of them, or after a resume
        the rest (none when the cursor is past this phase). After each unit: the progress bar, the
        divergence check, and a stop that saves and ends the run (StopRun)."""
        e, (n, unit) = self.engine, self.phases[phase]
        if self.order.index(e.phase) > self.order.index(phase):
            return
        if e.phase != phase:
            e.phase, e.step = phase, 0
        while e.step < n:
            yield
            e.step += 1
            self.units_run += 1
            last = e.logger.last
            self.bar.set_description_str(f"epoch {e.epoch + 1}/{e.cfg.epochs}", refresh=False)
            self.bar.unit = f" {unit}"
            self.bar.set_postfix_str("  ".join(f"{name} {format_metric(name, last[tag])}"
                                               for name, tag in self.shown if tag in last), refresh=False)
            self.bar.update()
            if self.projection and e.dist.is_main:
                self.projection.step()
            e._check_divergence(self.save)
            over = self.deadline is not None and time.monotonic() >= self.deadline
            if e.dist.any(bool(self.stop)) or over or (self.max_units is not None and self.units_run >= self.max_units):
                raise StopRun

    def end_epoch(self) -> None:
        """The next epoch starts at its first phase; the checkpoint is written."""
        e = self.engine
        e.epoch, e.phase, e.step = e.epoch + 1, self.order[0], 0
        self.save()
