"""Full NAS without weight sharing (Zoph & Le 2017): a controller samples m = controller.num_aggregate
architectures, each is trained from scratch (the child pool, pool.py), and the controller is updated by
REINFORCE on their rewards (c / valid_ppl^2 on PTB, the cube of the accuracy on images; `nas_reward`)
with a moving-average baseline (enas/policy_gradient.py, whose ENAS additions the section preset
switches off: see `Nas.section_preset`). The loop is `Nas.run`.

The children of update u are drawn with a generator seeded from (seed, u), so they do not depend on
where earlier children trained or on a resume: a resumed search equals an uninterrupted one.

The depth schedule (sec. 4.1: "we ask the controller to increase the depth by 2 for the child models
every 1,600 samples, starting at 6 layers"; off unless `nas.grow_from` is set): the children of a batch
have `scheduled_depth` layers, up to the space's num_layers, and the controller, built for the
deepest network, decides the shallower one's decisions, which begin the deeper one's (`set_space`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..arch import Arch
from ..config import ControllerConfig, SearchPreset
from ..controller import make_controller
from ..errors import ConfigError
from ..policy_gradient import reinforce
from ..spaces import get_space
from ..tasks import task_class
from .base import register
from .pool import ChildPoolSearch


@dataclass
class NasConfig:
    """The full-NAS strategy's section: how many controller updates, and its controller."""

    updates: int = 10             # controller updates, each over controller.num_aggregate children
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    # the depth schedule (module docstring): start with grow_from layers (0 = off: every child has the
    # space's num_layers) and add grow_by every grow_every sampled children, up to the space's num_layers
    grow_from: int = 0
    grow_by: int = 2              # sec. 4.1
    grow_every: int = 1600        # sec. 4.1

    ranges: ClassVar[dict] = {"updates": ">= 1", "grow_by": ">= 1", "grow_every": ">= 1"}
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
        class's `nas_controller_lr`), weights ~ U(-0.08, 0.08). The paper names no Adam betas or
        epsilon, hence Adam's own (beta1 0.9, eps 1e-8; ENAS's 0 and 1e-3 are its official code's).

        The policy is the paper's (sec. 3.1-3.3): softmax decisions on the raw logits and a skip bit of
        probability sigmoid(v^T tanh(W_prev h_j + W_curr h_i)), so none of the ENAS additions stays on:
        no temperature or tanh-constant shaping, no skip penalty, no entropy bonus (the paper's REINFORCE
        has the baseline only, sec. 3.2), no index-distance prior. What the paper leaves open (the
        baseline decay, the space's controller options such as the anchor step, m) stays as the space's
        preset has it; so does the number of updates (`nas_updates`)."""
        c = copy.copy(recipe.controller)
        c.hidden_size, c.num_layers, c.init_range = 35, 2, 0.08
        c.adam_beta1, c.adam_eps = 0.9, 1e-8
        c.lr = task_class(task).nas_controller_lr
        c.temperature = c.tanh_constant = 0.0          # off: plain softmax (sec. 3.1)
        c.skip_weight, c.entropy_weight = 0.0, 0.0     # sec. 3.2: REINFORCE with a baseline
        c.index_distance_penalty, c.scale_index_input = 0.0, False  # ENAS PTB priors
        c.subset_logits = "nas"                        # sec. 3.3: P(j -> i) = sigmoid(...)
        return NasConfig(updates=recipe.nas_updates, controller=c, **recipe.sections.get("nas", {}))

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        return int(state["batch"]) >= cfg.nas.updates

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        c = cfg.nas.controller
        self.controller, self.optimizer = make_controller(self.space, c, torch.device("cpu"))
        self.baseline = torch.zeros(())  # the moving average of the rewards (policy_gradient.py)
        if cfg.nas.grow_from:
            self.depths = self._schedule_spaces()
            self.pool.parse = self.parse

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        n = self.cfg.nas
        with self.pool.running(self.save, max_units, deadline, total=n.updates * n.controller.num_aggregate) as pool:
            while pool.batch < n.updates:
                self.grow()                      # the depth schedule, when on (sec. 4.1)
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
        return [str(a) for a in sample.archs(self.controller.space)]

    def reinforce(self, archs: list[str], rewards: list[float]) -> None:
        sample = self.controller.log_prob([self.pool.parse(a) for a in archs])
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

    # --- the depth schedule ----------------------------------------------------------------------
    def _schedule_spaces(self) -> dict[int, object]:
        """num_layers -> the space of that depth, for every depth the schedule reaches; ConfigError when
        the space has no depth or its shallower networks' decisions do not begin the deeper ones'."""
        n, options = self.cfg.nas, self.cfg.space_options
        deepest = self.space.options.get("num_layers")
        if not isinstance(deepest, int) or isinstance(deepest, bool):
            raise ConfigError(f"nas.grow_from: the depth schedule grows num_layers, an option {self.space.name} "
                              "does not have")
        if n.grow_from > deepest:
            raise ConfigError(f"nas.grow_from={n.grow_from} is more than the space's num_layers={deepest}")
        depths = {}
        for layers in range(n.grow_from, deepest + 1, n.grow_by):
            depths[layers] = get_space(self.cfg.space, **{**options, "num_layers": layers})
        depths[deepest] = self.space
        for space in depths.values():
            self.controller.set_space(space)  # checks that its decisions begin the deepest one's
        return depths

    def grow(self) -> None:
        """Give the controller the depth of this batch's children."""
        if self.cfg.nas.grow_from:
            depth = scheduled_depth(self.cfg.nas, self.pool.batch, self.space.options["num_layers"])
            self.controller.set_space(self.depths[depth])

    def parse(self, text: str) -> Arch:
        """An arc of any depth the schedule reaches, read as the space of its length."""
        count = len(str(text).replace(",", " ").split())
        space = next((s for s in self.depths.values() if s.num_tokens == count), self.space)
        return Arch.parse(space, text)


def scheduled_depth(n: NasConfig, batch: int, deepest: int) -> int:
    """The children's depth in controller update `batch` (counted from 0) under the depth schedule:
    grow_from layers, plus grow_by for every grow_every children sampled before the batch, at most
    `deepest` (sec. 4.1: 6 layers, 2 more every 1,600 samples)."""
    sampled = batch * n.controller.num_aggregate
    return min(deepest, n.grow_from + n.grow_by * (sampled // n.grow_every))
