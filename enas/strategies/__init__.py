"""Search strategies: enas (weight sharing + REINFORCE), nas (no sharing), random (with or without).

`start_search` and `resume_search` pick the class from the config, so the CLI and the comparison
harness run every strategy the same way and get the same run directory."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import SearchConfig
from ..errors import CheckpointError, ConfigError

STRATEGIES = ("enas", "nas", "random")


def _search_class(strategy: str, weight_sharing: bool):
    from .enas import EnasSearch
    from .nas import NasSearch
    from .random import RandomSharedSearch

    if strategy == "enas":
        return EnasSearch, {}
    if strategy == "random":
        return (RandomSharedSearch, {}) if weight_sharing else (NasSearch, {"uniform": True})
    if strategy == "nas":
        return NasSearch, {}
    raise ConfigError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def start_search(cfg: SearchConfig, run_dir, progress: bool = True):
    cls, kw = _search_class(cfg.strategy, cfg.weight_sharing)
    return cls.start(cfg, run_dir, progress=progress, **kw)


def resume_search(run_dir, overrides=(), progress: bool = True):
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        raise CheckpointError(f"{run_dir} holds no search to resume (no readable config.json)") from None
    cls, _ = _search_class(config.get("strategy", "enas"), config.get("weight_sharing", True))
    return cls.resume(run_dir, list(overrides), progress=progress)


def weight_sharing_run(run_dir) -> bool:
    """Whether the run trained a supernet (enas, or random with shared weights)."""
    config = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    strategy = config.get("strategy", "enas")
    return strategy == "enas" or (strategy == "random" and config.get("weight_sharing", True))
