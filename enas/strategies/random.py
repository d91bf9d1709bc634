"""Random search with weight sharing (Li & Talwalkar 2019): the supernet trains on uniformly sampled
architectures (no controller), then derive scores N uniformly random architectures on the shared
weights and keeps the best. Random search without weight sharing is `NasSearch(uniform=True)`."""
from __future__ import annotations

import random
from pathlib import Path

import torch

from .enas import EnasSearch


class RandomSharedSearch(EnasSearch):
    candidates_from = "drawn uniformly at random"

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        self.rng = random.Random(cfg.seed)

    @property
    def controller_steps(self) -> int:
        return 0  # nothing learns which architectures to draw

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.tensor([self.space.sample(rng=self.rng).tokens for _ in range(n)], device=self.device)

    def shared_arch(self) -> torch.Tensor:
        return self._uniform(1)[0]

    def epoch_arch(self) -> torch.Tensor:
        return self._uniform(1)[0]

    def candidates(self, n: int) -> torch.Tensor:
        return self._uniform(n)

    def state_dict(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {**super().state_dict(), "uniform_rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        version, internal, gauss = state["uniform_rng"]
        self.rng.setstate((version, tuple(internal), gauss))


def load_search(run_dir: str | Path, progress: bool = True) -> EnasSearch:
    """The weight-sharing search (enas or random) of a run directory, as its checkpoint left it."""
    from . import _search_class, weight_sharing_run
    from ..errors import CheckpointError
    import json

    try:
        sharing = weight_sharing_run(run_dir)
    except (OSError, ValueError, KeyError):
        raise CheckpointError(f"{run_dir} is not a search run (no readable config.json)") from None
    if not sharing:
        raise CheckpointError(f"{run_dir} is a search without weight sharing: nothing to derive, its best "
                              f"child is in {Path(run_dir) / 'arch.json'}")
    config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    cls, _ = _search_class(config["strategy"], True)
    return cls.load(run_dir, progress=progress)
