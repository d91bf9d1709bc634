"""Final training: a fixed architecture trained from scratch, then scored on validation and test.

The model kept is the one with the best validation metric (checked every epoch); the test split is
read once, at the end, with that model.
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import checkpoint as ckpt
from .arch import Arch
from .config import TrainConfig, to_dict
from .errors import AlreadyFinished
from .hparams import run_hparams
from .interrupt import stop_on_interrupt
from .logger import NullLogger, RunLogger, cell_figure, cell_text, format_metric
from .nn import build_child
from .optim import guarded_step, lr_at, make_sgd, set_lr
from .projection import Projection
from .restore import reading_checkpoint, restore
from .runtime import resolve_device, run_header, seed_everything
from .tasks import make_task


def count_parameters(model: torch.nn.Module, without_aux: bool = False) -> int:
    """The model's parameters; without_aux: those of its auxiliary head (`aux_head`) left out, the count
    papers give (the official DARTS count_parameters_in_MB leaves out "auxiliary")."""
    aux = getattr(model, "aux_head", None)
    skip = sum(p.numel() for p in aux.parameters()) if without_aux and aux is not None else 0
    return sum(p.numel() for p in model.parameters()) - skip


class FinalTraining:
    def __init__(self, arch: Arch, cfg: TrainConfig, run_dir: str | Path | None, progress: bool = True):
        """run_dir None: nothing is written (a child of full NAS, trained in a worker)."""
        self.arch, self.cfg, self.progress = arch, cfg, progress
        self.run_dir = None if run_dir is None else Path(run_dir)
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.task = make_task(cfg, self.device)
        self.model = build_child(arch.space, arch, **self.task.model_kwargs(cfg.model)).to(self.device)
        self.optimizer = make_sgd(self.model, cfg.optim)
        self.epoch = self.step = self.global_step = 0
        self.best: dict | None = None          # {"epoch", "metric", "state"}
        self.history: list[float] = []         # the validation metric after each epoch
        self.train_losses: list[tuple[int, float]] = []  # (step, mean training loss of its log window)
        self.skipped = torch.zeros((), dtype=torch.long, device=self.device)
        self.logger = RunLogger(self.run_dir) if self.run_dir is not None else NullLogger()

    @property
    def steps_per_epoch(self) -> int:
        n = self.task.steps_per_epoch
        return min(n, self.cfg.max_steps) if self.cfg.max_steps else n

    def _better(self, metric: float) -> bool:
        if self.best is None:
            return True
        return metric > self.best["metric"] if self.task.higher_is_better else metric < self.best["metric"]

    def run(self, max_units: int | None = None, test: bool = True) -> dict | None:
        """Train to the last epoch and return the results (with the test metric unless test=False);
        None when stopped early (checkpoint saved)."""
        units, bar = 0, None
        loss_sum = torch.zeros((), device=self.device)
        correct_sum = torch.zeros((), device=self.device)
        items, t0 = 0, time.perf_counter()
        left = (self.cfg.epochs - self.epoch) * self.steps_per_epoch - self.step
        projection = Projection(left, str(self.device)) if self.run_dir is not None else None  # not a child's
        with stop_on_interrupt() as stop:
            while self.epoch < self.cfg.epochs:
                if bar is None and self.progress:
                    bar = tqdm(total=self.steps_per_epoch, initial=self.step, leave=False, dynamic_ncols=True,
                               desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}")
                if self.step == self.steps_per_epoch:
                    self._end_epoch()
                    bar = bar.close() if bar else None
                    continue
                if self.step == 0:
                    set_lr(self.optimizer, lr_at(self.cfg.optim, self.epoch))
                self.model.train()
                if hasattr(self.model, "drop_path_progress"):  # drop-path rate ramps up over training
                    self.model.drop_path_progress = (self.epoch + self.step / self.steps_per_epoch) / self.cfg.epochs
                loss, n, correct = self.task.train_loss(self.model)
                ok = guarded_step(self.optimizer, loss, self.cfg.optim)
                loss_sum += torch.where(ok, loss.detach(), 0.0)
                if correct is not None:
                    correct_sum += correct
                self.skipped += ~ok
                items += n
                self.step += 1
                self.global_step += 1
                units += 1
                if self.global_step % self.cfg.log_every == 0:
                    mean = loss_sum.item() / self.cfg.log_every
                    self.train_losses.append((self.global_step, mean))
                    rate = items / (time.perf_counter() - t0)
                    metric = self.task.window_metric(mean, correct_sum.item(), items)
                    self.logger.scalars({"train/loss": mean, f"train/{self.task.metric}": metric,
                                         "train/lr": self.optimizer.param_groups[0]["lr"],
                                         "train/throughput": rate, "train/skipped_steps": self.skipped},
                                        self.global_step)
                    if bar:
                        bar.set_postfix_str(f"loss {mean:.3f}  {rate:,.0f} {self.task.unit}/s")
                    loss_sum.zero_()
                    correct_sum.zero_()
                    items, t0 = 0, time.perf_counter()
                if bar:
                    bar.update()
                if projection:
                    projection.step()
                if stop or (max_units is not None and units >= max_units):
                    self.save()
                    return None
        return self._finish(test)

    def _end_epoch(self) -> None:
        if self.task.has_valid:  # otherwise (official image recipe) the last model is the one kept
            metric = self.task.evaluate(self.model, None, "valid", self.cfg.eval_max_batches)
            self.history.append(metric)
            self.logger.scalars({f"valid/{self.task.metric}": metric, "epoch": self.epoch + 1}, self.global_step)
            if self.progress:
                m = self.task.metric
                tqdm.write(f"epoch {self.epoch + 1}/{self.cfg.epochs}  valid {m} {format_metric(m, metric)}",
                           file=sys.stderr)
            if self._better(metric):
                self.best = {"epoch": self.epoch + 1, "metric": metric,
                             "state": copy.deepcopy({k: v.cpu() for k, v in self.model.state_dict().items()})}
        self.epoch, self.step = self.epoch + 1, 0
        self.save()

    def _finish(self, with_test: bool = True) -> dict:
        if self.best is not None:
            self.model.load_state_dict(self.best["state"])
        kept = self.best["epoch"] if self.best else self.epoch
        test = self.task.evaluate(self.model, None, "test", self.cfg.eval_max_batches) if with_test else None
        m = self.task.metric
        if with_test:
            self.logger.scalar(f"test/{m}", test, self.global_step)
        result = {"space": self.arch.space.name, "arch": str(self.arch),
                  f"valid_{m}": self.best["metric"] if self.best else None, f"test_{m}": test,
                  "epoch_kept": kept, "parameters": count_parameters(self.model),
                  "steps": self.global_step, "skipped_steps": int(self.skipped), f"valid_{m}_per_epoch": self.history}
        self.logger.write_json("results.json", result)
        self.logger.hparams(run_hparams(self.cfg, "train", self.arch.space.name, arch=str(self.arch)),
                            {f"hparams/valid_{m}": result[f"valid_{m}"], f"hparams/test_{m}": test}, self.global_step)
        self.logger.close()
        return result

    # --- checkpoints ------------------------------------------------------------------------
    def save(self) -> None:
        if self.run_dir is None:
            return
        ckpt.save_checkpoint(self.run_dir / "checkpoints" / "last.pt", {
            "config": to_dict(self.cfg), "arch": self.arch.to_json(), "epoch": self.epoch, "step": self.step,
            "global_step": self.global_step, "best": self.best, "skipped": self.skipped.cpu(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "task": self.task.state_dict(), "rng": ckpt.rng_state()})

    @classmethod
    def start(cls, arch: Arch, cfg: TrainConfig, run_dir: str | Path, progress: bool = True) -> "FinalTraining":
        run = cls(arch, cfg, run_dir, progress)
        run.logger.write_json("config.json", run_header(to_dict(cfg)))
        run.logger.write_json("arch.json", arch.to_json(task=cfg.task, how="given"))
        run.logger.text("arch", cell_text(arch.space, arch), 0)
        run.logger.figure("cell", cell_figure(arch.space, arch), 0)
        return run

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: list[str] = (), progress: bool = True) -> "FinalTraining":
        """Continue an interrupted training with the config of RUN/config.json (the command line on top)
        and the architecture and state of its checkpoint."""
        cfg, state = restore(TrainConfig, run_dir, overrides)
        if (Path(run_dir) / "results.json").exists() and int(state["epoch"]) >= cfg.epochs:
            raise AlreadyFinished(f"{run_dir} is a finished training: nothing to resume (to train longer, resume "
                                  f"with a larger --set epochs=...); its results are in "
                                  f"{Path(run_dir) / 'results.json'}\n  next: tensorboard --logdir {run_dir}")
        path = Path(run_dir) / "checkpoints" / "last.pt"
        with reading_checkpoint(path):
            arch = Arch.from_json(state["arch"])
        run = cls(arch, cfg, run_dir, progress)
        with reading_checkpoint(path):
            run.epoch, run.step, run.global_step = int(state["epoch"]), int(state["step"]), int(state["global_step"])
            run.best, run.skipped = state["best"], state["skipped"].to(run.device)
            run.model.load_state_dict(state["model"])
            if run.best is not None:  # the model kept so far: loaded at the end, so checked now
                shapes = {k: tuple(v.shape) for k, v in run.model.state_dict().items()}
                if {k: tuple(v.shape) for k, v in run.best["state"].items()} != shapes:
                    raise ValueError("the best model's weights do not fit the architecture")
                run.best["metric"] = float(run.best["metric"])
            run.optimizer.load_state_dict(state["optimizer"])
            run.task.load_state_dict(state["task"])
            ckpt.set_rng_state(state["rng"])
        run.logger.purge_step = run.global_step + 1  # TensorBoard drops what came after
        run.logger.write_json("config.json", run_header(to_dict(cfg)))
        return run
