"""Random search with weight sharing (Li & Talwalkar 2019): the supernet trains on uniformly sampled
architectures (no controller), then derive scores N uniformly random architectures on the shared
weights and keeps the best. Random search without weight sharing is `NasSearch(uniform=True)`."""
from __future__ import annotations

import random

import torch

from .. import checkpoint as ckpt
from .enas import EnasSearch


class RandomSharedSearch(EnasSearch):
    candidates_from = "drawn uniformly at random"
    uses_controller = False

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        self.rng = random.Random(cfg.seed)

    @property
    def controller_steps(self) -> int:
        return 0  # nothing learns which architectures to draw

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.tensor([self.space.sample(rng=self.rng).tokens for _ in range(n)], device=self.device)

    def shared_archs(self, n: int) -> torch.Tensor:
        return self._uniform(n)

    def epoch_arch(self) -> torch.Tensor:
        return self._uniform(1)[0]

    def candidates(self, n: int) -> torch.Tensor:
        return self._uniform(n)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "uniform_rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        ckpt.set_random_state(self.rng, state["uniform_rng"])

