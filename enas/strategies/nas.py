"""Full NAS without weight sharing (Zoph & Le 2017): a controller samples m = controller.num_aggregate
architectures, each is trained from scratch (the child pool, pool.py), and the controller is updated by
REINFORCE on their rewards (c / valid_ppl^2 on PTB, the cube of the accuracy on images; `nas_reward`),
with the update ENAS uses (enas/policy_gradient.py: moving-average baseline, entropy bonus, skip
penalty, gradient clip). The loop is `Nas.run`.

The children of update u are drawn with a generator seeded from (seed, u), so they do not depend on
where earlier children trained or on a resume: a resumed search equals an uninterrupted one.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..arch import Arch
from ..config import ControllerConfig, SearchPreset
from ..controller import make_controller
from ..policy_gradient import reinforce
from ..tasks import task_class
from .base import register
from .pool import ChildPoolSearch


@dataclass
class NasConfig:
    """The full-NAS strategy's section: how many controller updates, and its controller."""

    updates: int = 10             # controller updates, each over controller.num_aggregate children
    controller: ControllerConfig = field(default_factory=ControllerConfig)

    ranges: ClassVar[dict] = {"updates": ">= 1"}
    fixed_keys: ClassVar[tuple[str, ...]] = ("controller.hidden_size", "controller.num_layers",
                                             "controller.op_bias", "controller.num_aggregate")


@register
class Nas(ChildPoolSearch):
    name = "nas"
    description = "full NAS (Zoph & Le 2017): every child trained from scratch, a controller by REINFORCE"
    Section = NasConfig
    length_key = "nas.updates"
    has_controller = True
    picked = "sampled by the controller"

    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> NasConfig:
        """The controller of full NAS (Zoph & Le 2017, sec. 4.1 and 4.2): a two-layer LSTM of 35 units per
        layer, trained with Adam at the task's lr (6e-4 on CIFAR-10, 5e-4 on Penn Treebank: the task
        class's `nas_controller_lr`), weights ~ U(-0.08, 0.08). The paper names no Adam betas, hence
        Adam's own beta1 = 0.9 (ENAS's 0 is its official code's). What the paper leaves open (logit
        shaping, entropy bonus, baseline decay, the space's controller options, m) stays as the space's
        preset has it; so does the number of updates (`nas_updates`)."""
        c = copy.copy(recipe.controller)
        c.hidden_size, c.num_layers, c.init_range, c.adam_beta1 = 35, 2, 0.08, 0.9
        c.lr = task_class(task).nas_controller_lr
        return NasConfig(updates=recipe.nas_updates, controller=c)

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        return int(state["batch"]) >= cfg.nas.updates

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        c = cfg.nas.controller
        self.controller, self.optimizer = make_controller(self.space, c, torch.device("cpu"))
        self.baseline = torch.zeros(())  # the moving average of the rewards (policy_gradient.py)

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        n = self.cfg.nas
        with self.pool.running(self.save, max_units, deadline, total=n.updates * n.controller.num_aggregate) as pool:
            while pool.batch < n.updates:
                archs = pool.draw(self.sample)   # m children, kept in the checkpoint until trained
                rewards = pool.train(archs)      # each from scratch, on the executor
                self.reinforce(archs, rewards)   # one controller update on their rewards
                pool.end_batch(rewards)          # the next update, and a checkpoint
        return pool.finished

    def sample(self) -> list[str]:
        """m architectures of this update, from the controller with a generator seeded by (seed, update)."""
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.pool.batch)
        with torch.no_grad():
            sample = self.controller.sample(self.cfg.nas.controller.num_aggregate, generator=generator)
        return [str(a) for a in sample.archs(self.space)]

    def reinforce(self, archs: list[str], rewards: list[float]) -> None:
        sample = self.controller.log_prob([Arch.parse(self.space, a) for a in archs])
        update = reinforce(self.controller, self.optimizer, sample, torch.tensor(rewards), self.baseline,
                           self.cfg.nas.controller)
        self.baseline = update.baseline
        self.logger.scalars(update.scalars, self.pool.batch + 1)

    def policy_state(self) -> dict:
        return {"baseline": self.baseline, "controller": self.controller.state_dict(),
                "ctrl_opt": self.optimizer.state_dict()}

    def load_policy_state(self, state: dict) -> None:
        self.baseline = state["baseline"].reshape(())
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["ctrl_opt"])
