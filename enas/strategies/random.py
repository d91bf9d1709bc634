"""Random search, with weight sharing and without.

`random` (Li & Talwalkar 2019, random search with weight sharing): ENAS's loop (enas.py) with a
policy that never learns. The supernet trains on uniformly drawn architectures, each epoch validates
a uniformly drawn one, and derive scores N uniform architectures on the shared weights.

`random_scratch`: the child pool of full NAS (pool.py) with uniform draws: every child trained from
scratch, the best one is the result. A space's preset gives it as many children as full NAS trains.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

import torch

from .. import checkpoint as ckpt
from ..config import SearchPreset
from .base import register
from .enas import Enas
from .pool import ChildPoolSearch


class UniformPolicy:
    """Architectures drawn uniformly by the space (`SearchSpace.sample`) from a seeded generator; no
    updates."""

    unit = "update"
    steps = 0
    candidates_from = "drawn uniformly at random"

    def __init__(self, engine, seed: int):
        self.engine, self.rng = engine, random.Random(seed)

    def sample(self, n: int) -> torch.Tensor:
        """n uniform architectures [n, L] on the engine's device."""
        return torch.tensor([self.engine.space.sample(rng=self.rng).tokens for _ in range(n)],
                            device=self.engine.device)

    def best(self) -> torch.Tensor:
        """What each epoch validates: one uniform architecture [L]."""
        return self.sample(1)[0]

    def candidates(self, n: int) -> torch.Tensor:
        return self.sample(n)

    def end_epoch(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"uniform_rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        ckpt.set_random_state(self.rng, state["uniform_rng"])


@register
class Random(Enas):
    name = "random"
    description = "random search with weight sharing (Li & Talwalkar 2019): the supernet trained on uniform draws"
    label = "random (shared weights)"
    Section = None
    has_controller = False
    analyze_groups = ()
    validated = "a random architecture"

    def make_policy(self):
        return UniformPolicy(self.engine, self.cfg.seed)


@dataclass
class RandomScratchConfig:
    """Random search without weight sharing: how many children, and how many drawn at a time (the
    children in flight together; the checkpoint keeps a drawn batch until each child of it is trained)."""

    children: int = 20
    batch: int = 1

    ranges: ClassVar[dict] = {"children": ">= 1", "batch": ">= 1"}


@register
class RandomScratch(ChildPoolSearch):
    name = "random_scratch"
    description = "random search without weight sharing: uniform children, each trained from scratch"
    label = "random (from scratch)"
    Section = RandomScratchConfig
    length_key = "random_scratch.children"
    picked = "random"

    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> RandomScratchConfig:
        """As many children as full NAS trains under the same preset, drawn as many at a time."""
        m = recipe.controller.num_aggregate
        return RandomScratchConfig(children=recipe.nas_updates * m, batch=m)

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        return int(state["children"]) >= cfg.random_scratch.children

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        self.rng = random.Random(cfg.seed)

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        r = self.cfg.random_scratch
        with self.pool.running(self.save, max_units, deadline, total=r.children) as pool:
            while pool.children < r.children:
                archs = pool.draw(self.sample)   # kept in the checkpoint until trained
                pool.end_batch(pool.train(archs))
        return pool.finished

    def sample(self) -> list[str]:
        """The next batch of uniform architectures (the last batch may be smaller)."""
        r = self.cfg.random_scratch
        return [str(self.space.sample(rng=self.rng)) for _ in range(min(r.batch, r.children - self.pool.children))]

    def policy_state(self) -> dict:
        return {"uniform_rng": self.rng.getstate()}

    def load_policy_state(self, state: dict) -> None:
        ckpt.set_random_state(self.rng, state["uniform_rng"])
