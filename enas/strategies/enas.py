"""ENAS (Pham et al. 2018, sec. 2.2): alternate training the shared weights on architectures sampled
from an LSTM controller and training the controller with REINFORCE on their validation reward.

One epoch = `shared_steps` steps of the supernet (a freshly sampled architecture per minibatch), then
`controller.steps` controller updates (each averaging `num_aggregate` sampled architectures), then a
validation of the controller's most likely architecture and a checkpoint. The loop is `Enas.run`;
the machinery under it (windows of drawn architectures, CUDA graphs, row-sparse updates, the cursor
that makes resume exact, DDP) is the engine's (engine.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..config import ControllerConfig, SearchPreset
from ..controller import make_controller
from ..memory import ArchMemory
from ..policy_gradient import reinforce
from .base import register
from .engine import SharedWeights
from .weight_sharing import WeightSharingSearch


@dataclass
class EnasConfig:
    """The ENAS strategy's section: its controller (the space's preset gives the official code's)."""

    controller: ControllerConfig = field(default_factory=ControllerConfig)

    fixed_keys: ClassVar[tuple[str, ...]] = ("controller.hidden_size", "controller.num_layers",
                                             "controller.op_bias", "controller.num_aggregate")


class ControllerPolicy:
    """An LSTM controller (enas/controller.py) trained by REINFORCE with a moving-average baseline
    (enas/policy_gradient.py) on rewards the shared weights give; optionally also trained to
    reconstruct architectures it sampled before (the memorisation regulariser, enas/memory.py)."""

    unit = "controller update"
    candidates_from = "sampled from the controller"

    def __init__(self, c: ControllerConfig, engine: SharedWeights):
        self.c, self.engine = c, engine
        self.controller, self.optimizer = make_controller(engine.space, c, engine.device)
        self.baseline = torch.zeros((), device=engine.device)  # the moving average of the rewards
        # architectures the controller learns to reconstruct (controller.memory), only when it is trained
        self.memory = None
        if c.memory and c.steps:
            self.memory = ArchMemory(engine.space.num_tokens, c.memory_size, c.memory_per_epoch, c.memory_replace,
                                     engine.device)
        self._records: list = []  # (update, epoch, tokens, metric, reward, entropy): archs.jsonl rows at saves

    @property
    def steps(self) -> int:
        """Controller updates per epoch."""
        return self.c.steps

    def sample(self, n: int) -> torch.Tensor:
        """n architectures [n, L] to train the shared weights on. The controller does not change during
        the shared phase, so drawing n at once draws from the same distribution."""
        with torch.no_grad():
            return self.controller.sample(n).tokens

    def best(self) -> torch.Tensor:
        """The controller's most likely architecture [L]."""
        with torch.no_grad():
            return self.controller.sample(1, greedy=True).tokens[0]

    def candidates(self, n: int) -> torch.Tensor:
        """n architectures [n, L] for derive to score on the shared weights."""
        return self.sample(n)

    def update(self) -> None:
        """One REINFORCE update: num_aggregate architectures sampled, their metric on one reward batch of
        the shared weights (one forward for all), reward = the task's (PTB: c / ppl). Under torchrun the
        controller lives on rank 0; the other ranks only count the update."""
        e, c = self.engine, self.c
        if not e.dist.is_main:
            e.policy_step += 1
            return
        self.controller.train()
        sample = self.controller.sample(c.num_aggregate)    # tokens [n, L], log_prob [n]
        metric = e.score(sample.tokens)                     # [n]
        extra, memory_scalars = None, {}
        if self.memory is not None:
            memory_scalars["controller/memory_size"] = len(self.memory)
            # from epoch memory_loss_start_epoch (1-based) on: reconstruct remembered architectures
            if e.epoch + 1 >= c.memory_loss_start_epoch and len(self.memory) and c.memory_batch:
                rows = self.memory.draw(c.memory_batch)  # [b, L]
                nll = -self.controller.log_prob(rows).log_prob.mean()  # teacher forced, mean over the b rows
                extra = c.memory_weight * nll
                memory_scalars["controller/memory_loss"] = nll.detach()
        update = reinforce(self.controller, self.optimizer, sample, e.task.reward(metric), self.baseline, c,
                           extra_loss=extra)
        self.baseline = update.baseline
        e.policy_step += 1
        self._records.append((e.policy_step, e.epoch, sample.tokens, metric, update.reward, sample.entropy.detach()))
        if e.policy_step % max(1, e.cfg.log_every // 5) == 0 or e.step + 1 == c.steps:
            e.logger.scalars({**update.scalars, f"controller/{e.task.metric}": metric.mean(), **memory_scalars},
                             e.global_step)

    def end_epoch(self) -> None:
        """From the end of epoch memory_start_epoch (1-based) on: remember new samples."""
        e = self.engine
        if self.memory is not None and e.dist.is_main and e.epoch + 1 >= self.c.memory_start_epoch:
            n = self.memory.wanted()
            if n:
                with torch.no_grad():
                    self.memory.store(self.controller.sample(n).tokens)  # [n, L]

    def flush(self) -> None:
        """Every controller reward to archs.jsonl (the host reads them once per save, not per update)."""
        e = self.engine
        for step, epoch, tokens, metric, reward, entropy in self._records:
            for t, m, r, h in zip(tokens.tolist(), metric.tolist(), reward.tolist(), entropy.tolist()):
                e.logger.arch({"step": step, "epoch": epoch, "phase": "controller",
                               "arch": " ".join(map(str, t)), "reward": r, "metric": m, "entropy": h})
        self._records = []

    def state_dict(self) -> dict:
        return {"controller": self.controller.state_dict(), "ctrl_opt": self.optimizer.state_dict(),
                "baseline": self.baseline.cpu(), **({"memory": self.memory.state_dict()} if self.memory else {})}

    def load_state_dict(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["ctrl_opt"])
        self.baseline = state["baseline"].to(self.engine.device)
        if self.memory is not None and "memory" in state:  # a run that turns it on at resume starts empty
            self.memory.load_state_dict(state["memory"])


@register
class Enas(WeightSharingSearch):
    name = "enas"
    description = "ENAS (Pham et al. 2018): shared weights trained on a controller's samples, the controller by REINFORCE"
    Section = EnasConfig
    has_controller = True
    analyze_groups = ("trained", "untrained", "uniform")
    validated = "the controller's most likely architecture"

    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> EnasConfig:
        return EnasConfig(controller=recipe.controller)

    def make_policy(self):
        return ControllerPolicy(self.cfg.enas.controller, self.engine)

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        e, policy = self.engine, self.policy
        phases = {"shared": (e.shared_steps, "shared step"), "controller": (policy.steps, policy.unit)}
        with e.loop(phases, self.save, max_units, deadline) as loop:
            while loop.epoch < self.cfg.epochs:
                for _ in loop.units("shared"):      # the shared weights, one sampled architecture per minibatch
                    e.train_step(e.next_arch(policy.sample))
                for _ in loop.units("controller"):  # the controller, by REINFORCE on validation rewards
                    policy.update()
                e.validate(policy.best)             # the most likely architecture on the validation split
                policy.end_epoch()
                loop.end_epoch()                    # the next epoch, and a checkpoint
        return loop.finished
