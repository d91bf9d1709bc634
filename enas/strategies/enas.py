"""ENAS search (Pham et al. 2018, sec. 2.2): alternate training the shared weights on sampled
architectures and training the controller with REINFORCE on their validation reward.

One epoch = `shared_steps` steps of the supernet (a freshly sampled architecture per minibatch),
then `controller.steps` controller updates (each averaging `num_aggregate` sampled architectures),
then a validation of the controller's most likely architecture and a checkpoint.

The loop advances one *unit* (a shared step or a controller update) at a time and keeps its cursor
(epoch, phase, step) in the checkpoint, so an interrupted run resumes exactly where it stopped.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .. import checkpoint as ckpt
from ..arch import Arch
from ..config import SearchConfig, to_dict
from ..cuda_graph import CapturedStep
from ..errors import ConfigError
from ..hparams import run_hparams
from ..interrupt import stop_on_interrupt
from ..logger import NullLogger, RunLogger, format_metric
from ..memory import ArchMemory
from ..nn import build_supernet
from ..optim import guarded_step, lr_at, make_sgd, set_lr
from ..policy_gradient import reinforce
from ..spaces import get_space
from ..tasks import make_task, task_class
from .common import make_controller, resolve_device, run_header, seed_everything
from .distributed import Distributed


MAX_WINDOW = 100  # architectures drawn at once for the shared steps ahead


class EnasSearch:
    """Owns the supernet, the controller, their optimisers and the run directory."""

    def __init__(self, cfg: SearchConfig, run_dir: str | Path, progress: bool = True):
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
        self.shared_opt = make_sgd(self.supernet, cfg.shared, row_sparse=not graphs)
        self._captured_step = CapturedStep(self._shared_body, enabled=graphs)
        self._captured_reward = CapturedStep(self._reward_body, enabled=graphs)
        self._arch_window, self._arch_pos, self._arch_host = torch.zeros(0, dtype=torch.long), 0, None
        # a search that draws its architectures otherwise (random search) builds no controller
        self.controller, self.ctrl_opt = (make_controller(self.space, cfg.controller, self.device)
                                          if self.uses_controller else (None, None))
        self.baseline = torch.zeros((), device=self.device)  # the moving average of the rewards (policy_gradient.py)
        # architectures the controller learns to reconstruct (controller.memory; enas/memory.py), only
        # where it is trained: random search (no controller steps) stays as it is
        self.memory = None
        if cfg.controller.memory and self.controller_steps:
            c = cfg.controller
            self.memory = ArchMemory(self.space.num_tokens, c.memory_size, c.memory_per_epoch, c.memory_replace,
                                     self.device)
        # cursor and counters (all in the checkpoint)
        self.epoch, self.phase, self.step = 0, "shared", 0
        self.shared_step = self.controller_step = 0
        self.skipped = torch.zeros((), dtype=torch.long, device=self.device)
        self._window = self._new_window()
        self._records: list = []
        self.shared_losses: list[tuple[int, float]] = []  # (shared step, mean loss of its log window)
        self.logger = RunLogger(self.run_dir) if self.dist.is_main else NullLogger()

    # --- the loop ---------------------------------------------------------------------------
    @property
    def global_step(self) -> int:
        """The x axis of every TensorBoard tag: shared steps and controller updates so far."""
        return self.shared_step + self.controller_step

    @property
    def shared_steps(self) -> int:
        return self.cfg.shared_steps or self.task.steps_per_epoch

    @property
    def controller_steps(self) -> int:
        return self.cfg.controller.steps

    uses_controller = True

    # where architectures come from (random search overrides these three)
    def shared_archs(self, n: int) -> torch.Tensor:
        """The architectures of the next n shared steps, [n, L] on the device. The controller does
        not change during the shared phase, so drawing n at once draws from the same distribution."""
        with torch.no_grad():
            return self.controller.sample(n).tokens

    def epoch_arch(self) -> torch.Tensor:
        """The architecture validated at the end of an epoch: the controller's most likely one."""
        with torch.no_grad():
            return self.controller.sample(1, greedy=True).tokens[0]

    candidates_from = "sampled from the controller"

    def candidates(self, n: int) -> torch.Tensor:
        """n architectures [n, L] for derive to score on the shared weights."""
        with torch.no_grad():
            return self.controller.sample(n).tokens

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        """Run to the last epoch; True when finished, False when stopped (Ctrl-C, max_units, or the
        time.monotonic() deadline of a budgeted comparison). A log window whose every shared step had a
        non-finite loss saves the checkpoint and raises Diverged."""
        units, per_epoch, m = 0, self.shared_steps + self.controller_steps, self.task.metric
        self._diverged_since = None  # the first shared step of a window whose every step was skipped
        done = self.epoch * per_epoch + self.step + (self.shared_steps if self.phase == "controller" else 0)
        # One bar for the whole run. Its postfix shows the values last logged, so it reads nothing off
        # the device between log steps.
        shown = (("loss", "shared/loss"), (m, f"shared/{m}"), ("reward", "controller/reward"),
                 ("entropy", "controller/entropy"))
        with stop_on_interrupt() as stop, tqdm(total=self.cfg.epochs * per_epoch, initial=done, unit=" shared step",
                                               desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", dynamic_ncols=True,
                                               disable=not self.progress) as bar:
            while self.epoch < self.cfg.epochs:
                logged = False
                if self.phase == "shared" and self.step < self.shared_steps:
                    self._shared_step()
                    logged = self.shared_step % self.cfg.log_every == 0
                elif self.phase == "shared":
                    self.phase, self.step = "controller", 0
                    continue
                elif self.step < self.controller_steps:
                    self._controller_step()
                else:
                    self._end_epoch()
                    continue
                self.step += 1
                units += 1
                last = self.logger.last
                bar.set_description_str(f"epoch {self.epoch + 1}/{self.cfg.epochs}", refresh=False)
                bar.unit = " shared step" if self.phase == "shared" else " controller update"
                bar.set_postfix_str("  ".join(f"{name} {format_metric(name, last[tag])}"
                                              for name, tag in shown if tag in last), refresh=False)
                bar.update()
                if logged and self.dist.any(self._diverged_since is not None):  # saved, then one line
                    from ..errors import Diverged

                    self.save()
                    self.logger.flush()
                    raise Diverged(f"the shared loss is not finite since step {self._diverged_since} (every step "
                                   f"since was skipped); lower shared.lr (now {self.cfg.shared.lr:g}), then continue "
                                   f"with --resume --set shared.lr=... or start over with --overwrite (checkpoint "
                                   f"saved in {self.run_dir / 'checkpoints' / 'last.pt'})")
                over = deadline is not None and time.monotonic() >= deadline
                if self.dist.any(bool(stop)) or over or (max_units is not None and units >= max_units):
                    self.save()
                    return False
        self.save()
        m = self.task.metric
        self.logger.hparams(run_hparams(self.cfg, "search"), {f"hparams/valid_{m}": self.logger.last.get(f"valid/{m}")},
                            self.global_step)
        if self.dist.enabled:
            sums = self.dist.checksums(self.supernet)
            self.logger.write_json("distributed.json", {"world_size": self.dist.world, "weight_checksums": sums,
                                                        "in_sync": len(set(sums)) == 1})
        self.logger.flush()
        return True

    def _next_shared_arch(self):
        """The architecture of this shared step: a row of the window drawn at the window's first step
        (up to log_every steps, at most MAX_WINDOW, within the phase), so that the controller's
        sampling launches are paid once per window. A supernet that reads its architecture on the
        device gets the row [L]; one that decides in Python which ops run gets an Arch, the window
        read to the host at once."""
        if self._arch_pos >= len(self._arch_window):
            n = max(1, min(self.cfg.log_every, self.shared_steps - self.step, MAX_WINDOW))
            self._arch_window, self._arch_pos = self.shared_archs(n), 0  # [n, L] on the device
            self._arch_host = self._host_archs(self._arch_window)
        i, self._arch_pos = self._arch_pos, self._arch_pos + 1
        return self._arch_window[i] if self._arch_host is None else self._arch_host[i]

    def _host_archs(self, window: torch.Tensor) -> list[Arch] | None:
        """The window [n, L] as Archs for a supernet that picks its ops in Python (one host read),
        None for one that reads the architecture on the device."""
        return None if self.device_arch else [Arch(self.space, tuple(t)) for t in window.tolist()]

    def _shared_step(self) -> None:
        cfg = self.cfg
        if self.step == 0:
            set_lr(self.shared_opt, lr_at(cfg.shared, self.epoch))
        self.supernet.train()
        if self.dist.enabled:  # rank 0 draws, every rank reads the same row
            if self.dist.is_main:
                arch = self.shared_archs(1)[0]
            else:
                arch = torch.empty(self.space.num_tokens, dtype=torch.long, device=self.device)
            arch = self.dist.broadcast_arch(arch)
        else:
            arch = self._next_shared_arch()
        if self.task.carries_state:  # the recurrent tasks: one step, captured as a CUDA graph on a GPU
            x, y, hidden = self.task.train_inputs(self.supernet)
            loss, ok, hidden = self._captured_step(arch, x, y, hidden, key=self.shared_opt.param_groups[0]["lr"])
            self.task.keep_state(hidden)
            items, correct = y.numel(), None
        else:
            with self._autocast():
                loss, items, correct = self.task.train_loss(self.shared_model, arch)
            ok = guarded_step(self.shared_opt, loss, cfg.shared)
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

    def _controller_step(self) -> None:
        c = self.cfg.controller
        if not self.dist.is_main:  # the controller lives on rank 0; the others wait for the next arch
            self.controller_step += 1
            return
        self.controller.train()
        sample = self.controller.sample(c.num_aggregate)               # tokens [n, L], log_prob [n]
        batch = self.task.next_reward_batch()
        metric = self._captured_reward(sample.tokens, *batch)[0].clone()  # [n], one forward for all n
        extra, memory_scalars = None, {}
        if self.memory is not None:
            memory_scalars["controller/memory_size"] = len(self.memory)
            # from epoch memory_loss_start_epoch (1-based) on: reconstruct remembered architectures
            if self.epoch + 1 >= c.memory_loss_start_epoch and len(self.memory) and c.memory_batch:
                rows = self.memory.draw(c.memory_batch)  # [b, L]
                nll = -self.controller.log_prob(rows).log_prob.mean()  # teacher forced, mean over the b rows
                extra = c.memory_weight * nll
                memory_scalars["controller/memory_loss"] = nll.detach()
        update = reinforce(self.controller, self.ctrl_opt, sample, self.task.reward(metric), self.baseline, c,
                           extra_loss=extra)
        self.baseline = update.baseline
        self.controller_step += 1
        self._records.append((self.controller_step, sample.tokens, metric, update.reward, sample.entropy.detach()))
        if self.controller_step % max(1, self.cfg.log_every // 5) == 0 or self.step + 1 == c.steps:
            self.logger.scalars({**update.scalars, f"controller/{self.task.metric}": metric.mean(),
                                 **memory_scalars}, self.global_step)

    # --- the two bodies a GPU replays as CUDA graphs (enas/cuda_graph.py) ----------------------
    def _shared_body(self, arch, x, y, hidden):
        """One shared step of a recurrent task: arch [L], x, y [T, B], hidden [B, S*H] ->
        (loss 0-d, ok 0-d bool, next hidden [B, S*H] in hidden's dtype)."""
        with self._autocast():
            loss, hidden_next = self.task.train_forward(self.shared_model, arch, x, y, hidden)
        ok = guarded_step(self.shared_opt, loss, self.cfg.shared)
        return loss.detach(), ok, hidden_next.detach().to(hidden.dtype)

    def _reward_body(self, tokens, *batch):
        """The metric of every architecture of tokens [n, L] on one reward batch: ([n],)."""
        with self._autocast():
            return (self.task.score_many(self.supernet, tokens, batch),)

    def _autocast(self):
        """bf16 autocast of forwards when `bf16` is set (matmuls in bfloat16, losses in float32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _end_epoch(self) -> None:
        if not self.dist.is_main:
            self.epoch, self.phase, self.step = self.epoch + 1, "shared", 0
            return
        self._flush_records()
        arch = self.epoch_arch()
        valid = self.task.evaluate(self.supernet, arch, "valid", self.cfg.eval_max_batches)
        self.logger.scalars({f"valid/{self.task.metric}": valid, "epoch": self.epoch + 1}, self.global_step)
        self.logger.text("valid/arch", str(Arch(self.space, arch.tolist())), self.global_step)
        if self.progress:
            m = self.task.metric
            tqdm.write(f"epoch {self.epoch + 1}/{self.cfg.epochs}  valid {m} {format_metric(m, valid)} "
                       f"on the shared weights", file=sys.stderr)
        if self.memory is not None and self.epoch + 1 >= self.cfg.controller.memory_start_epoch:
            # the end of epoch memory_start_epoch (1-based) and of every later one: remember new samples
            n = self.memory.wanted()
            if n:
                with torch.no_grad():
                    self.memory.store(self.controller.sample(n).tokens)  # [n, L]
        self.epoch, self.phase, self.step = self.epoch + 1, "shared", 0
        self.save()

    # --- logging ----------------------------------------------------------------------------
    def _new_window(self) -> dict:
        z = torch.zeros((), device=self.device)
        return {"loss": z.clone(), "ok": z.clone(), "correct": z.clone(), "items": 0, "time": time.perf_counter()}

    def _log_shared(self) -> None:
        w, self._window = self._window, self._new_window()
        total, ok = torch.stack([w["loss"], w["ok"]]).tolist()  # the one host sync, at log time
        loss = total / ok if ok else float("inf")  # no step of the window had a finite loss
        if not ok and getattr(self, "_diverged_since", None) is None:
            self._diverged_since = max(1, self.shared_step - self.cfg.log_every + 1)
        self.shared_losses.append((self.shared_step, loss))
        seconds = time.perf_counter() - w["time"]
        m = self.task.metric
        metric = self.task.window_metric(loss, w["correct"].item(), w["items"])
        self.logger.scalars({"shared/loss": loss, f"shared/{m}": metric,
                             "shared/lr": self.shared_opt.param_groups[0]["lr"],
                             "shared/throughput": w["items"] / max(seconds, 1e-9),
                             "shared/skipped_steps": self.skipped}, self.global_step)

    def _flush_records(self) -> None:
        """Write every controller reward to archs.jsonl (host sync once per phase, not per step)."""
        for step, tokens, metric, reward, entropy in self._records:
            for t, m, r, h in zip(tokens.tolist(), metric.tolist(), reward.tolist(), entropy.tolist()):
                self.logger.arch({"step": step, "epoch": self.epoch, "phase": "controller",
                                  "arch": " ".join(map(str, t)), "reward": r, "metric": m, "entropy": h})
        self._records = []

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": to_dict(self.cfg), "epoch": self.epoch, "phase": self.phase, "step": self.step,
            "shared_step": self.shared_step, "controller_step": self.controller_step,
            "skipped": self.skipped.cpu(),
            "supernet": self.supernet.state_dict(), "shared_opt": self.shared_opt.state_dict(),
            **({"controller": self.controller.state_dict(), "ctrl_opt": self.ctrl_opt.state_dict(),
                "baseline": self.baseline.cpu()} if self.controller is not None else {}),
            "task": self.task.state_dict(), "rng": ckpt.rng_state(),
            "arch_window": self._arch_window[self._arch_pos:].cpu(),  # the drawn archs not yet trained on
            **({"memory": self.memory.state_dict()} if self.memory is not None else {}),
        }

    def save(self) -> None:
        if not self.dist.is_main:
            return
        self._flush_records()
        ckpt.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", self.state_dict())

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.phase, self.step = state["epoch"], state["phase"], state["step"]
        self.shared_step, self.controller_step = state["shared_step"], state["controller_step"]
        self.skipped = state["skipped"].to(self.device)
        self.supernet.load_state_dict(state["supernet"])
        self.shared_opt.load_state_dict(state["shared_opt"])
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])
            self.ctrl_opt.load_state_dict(state["ctrl_opt"])
            self.baseline = state["baseline"].to(self.device)
        self.task.load_state_dict(state["task"])
        if self.memory is not None and "memory" in state:  # a run that turns it on at resume starts empty
            self.memory.load_state_dict(state["memory"])
        ckpt.set_rng_state(state["rng"])
        window = state.get("arch_window", torch.zeros(0, dtype=torch.long))  # older checkpoints: none drawn
        self._arch_window, self._arch_pos = window.to(self.device), 0
        self._arch_host = self._host_archs(self._arch_window)
        self._window = self._new_window()

    @classmethod
    def load(cls, run_dir: str | Path, overrides: list[str] = (), progress: bool = True) -> "EnasSearch":
        """The search as RUN/checkpoints/last.pt left it: the config of RUN/config.json with `overrides`
        (the command line: device and any --set) on top, the state of the checkpoint (common.restore)."""
        from .common import reading_checkpoint, restore

        cfg, state = restore(SearchConfig, run_dir, overrides)
        search = cls(cfg, run_dir, progress)
        with reading_checkpoint(Path(run_dir) / "checkpoints" / "last.pt"):
            search.load_state_dict(state)
        return search

    @classmethod
    def start(cls, cfg: SearchConfig, run_dir: str | Path, progress: bool = True) -> "EnasSearch":
        """A new search; writes RUN/config.json."""
        search = cls(cfg, run_dir, progress)
        search.logger.write_json("config.json", run_header(to_dict(cfg)))
        return search

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: list[str] = (), progress: bool = True) -> "EnasSearch":
        """Continue an interrupted search: what was logged after its checkpoint is dropped, and
        config.json records the config it continues with."""
        from ..rundir import read_archs

        read_archs(run_dir)  # refuses an altered archs.jsonl before anything is rewritten
        search = cls.load(run_dir, overrides, progress)
        search.logger.truncate_archs(search.controller_step)
        search.logger.purge_step = search.global_step + 1  # TensorBoard drops what came after
        search.logger.write_json("config.json", run_header(to_dict(search.cfg)))
        return search
