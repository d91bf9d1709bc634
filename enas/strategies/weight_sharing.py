"""The base of every weight-sharing strategy: the shared-weights engine (engine.py) plus a policy.

A policy says which architectures train the shared weights (`sample`), how it learns from their
rewards (`update`, `steps` of them per epoch), which architecture the epoch's validation runs on
(`best`) and which ones derive scores (`candidates`). The ENAS controller with REINFORCE is one
(enas.py), uniform sampling another (random.py). The strategy's `run` is its paper's loop over the
engine and its policy; the checkpoint holds both.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..config import to_dict
from ..hparams import run_hparams
from ..logger import count_of, format_metric
from .base import Strategy
from .derive import best_on_shared_weights
from .engine import SharedWeights


class WeightSharingSearch(Strategy):
    """A search over one supernet, `self.engine`, driven by `self.policy` (`make_policy`)."""

    shared_weights = True
    validated: ClassVar[str] = ""  # the architecture each epoch's validation runs on, in words

    def __init__(self, cfg, run_dir: str | Path, progress: bool = True):
        self.cfg = cfg
        self.engine = SharedWeights(cfg, run_dir, progress)  # seeds, then builds the supernet
        self.policy = self.make_policy()                    # built after the supernet, from the same seed

    def make_policy(self):
        raise NotImplementedError

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        return int(state["epoch"]) >= cfg.epochs

    @property
    def is_main(self) -> bool:
        return self.engine.dist.is_main

    def close(self) -> None:
        self.engine.dist.close()

    @property
    def run_dir(self) -> Path:
        return self.engine.run_dir

    @property
    def logger(self):
        return self.engine.logger

    @property
    def device(self):
        return self.engine.device

    @property
    def space(self):
        return self.engine.space

    # --- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"config": to_dict(self.cfg), **self.engine.state_dict(), **self.policy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.engine.load_state_dict(state)
        self.policy.load_state_dict(state)

    def save(self) -> None:
        """The policy's records to archs.jsonl, then the checkpoint (rank 0 only)."""
        if self.engine.dist.is_main:
            self.policy.flush()
            self.engine.save(self.state_dict())

    def finish(self) -> None:
        e = self.engine
        e.logger.hparams(run_hparams(self.cfg, "search"), self.hparams(), e.global_step)
        e.logger.flush()

    def hparams(self) -> dict:
        m = self.engine.task.metric
        return {f"hparams/valid_{m}": self.logger.last.get(f"valid/{m}")}

    def continue_from(self, records: list[dict]) -> None:
        self.logger.truncate_archs(self.engine.policy_step)
        self.logger.purge_step = self.engine.global_step + 1  # TensorBoard drops what came after

    # --- what the commands ask of a run -----------------------------------------------------------
    def derive(self, samples: int | None = None) -> dict | None:
        """`enas derive`: the best of N of the policy's candidates on the shared weights (derive.py)."""
        return best_on_shared_weights(self, samples)

    def result(self) -> dict | None:
        return self.derive()

    def summary(self, run: Path, seconds: float) -> tuple[list[str], dict]:
        c, e = self.cfg, self.engine
        m = e.task.metric
        valid = e.logger.last.get(f"valid/{m}")
        data = {"run": str(run), "strategy": c.strategy, "space": c.space, "task": c.task,
                "seconds": round(seconds, 1), "epochs": e.epoch, "shared_steps": e.shared_step,
                "controller_updates": e.policy_step, f"valid_{m}": valid, "next": f"enas derive {run}"}
        updates = f", {count_of(e.policy_step, self.policy.unit)}" if e.policy_step else ""
        lines = [f"{c.strategy} search of {c.space} on {c.task} finished in {seconds:.0f} s: "
                 f"{count_of(e.epoch, 'epoch')}, {count_of(e.shared_step, 'shared step')}{updates}"]
        if valid is not None:
            lines.append(f"  valid {m} {format_metric(m, valid)} at the last epoch ({self.validated} on the "
                         f"shared weights)")
        lines += [f"  written to {run}: config.json, archs.jsonl, TensorBoard events, checkpoints/last.pt",
                  f"  next: {data['next']}"]
        return lines, data
