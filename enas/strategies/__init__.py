"""Search strategies: enas (weight sharing + REINFORCE), nas (no sharing), random (with or without).

`start_search` and `resume_search` pick the class from the config, so the CLI and the comparison
harness run every strategy the same way and get the same run directory."""
from __future__ import annotations

from pathlib import Path

from ..config import SearchConfig, validate
from ..errors import CheckpointError, ConfigError
from .common import check_task, run_config  # noqa: F401  (run_config: part of this package's API)

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


def check_search(cfg: SearchConfig) -> None:
    """What a new search needs before it writes anything: a valid config, and for a search without
    weight sharing, whose children each load the data, the device, the executor and the data (a
    weight-sharing search loads the data when it starts)."""
    validate(cfg)
    check_task(cfg)
    check = getattr(_search_class(cfg.strategy, cfg.weight_sharing)[0], "check", None)
    if check is not None:
        check(cfg)


def start_search(cfg: SearchConfig, run_dir, progress: bool = True):
    validate(cfg)
    check_task(cfg)
    cls, kw = _search_class(cfg.strategy, cfg.weight_sharing)
    return cls.start(cfg, run_dir, progress=progress, **kw)


def _run_class(run_dir):
    config = run_config(run_dir)
    return _search_class(config.get("strategy", "enas"), config.get("weight_sharing", True))[0]


def resume_search(run_dir, overrides=(), progress: bool = True):
    return _run_class(run_dir).resume(run_dir, list(overrides), progress=progress)


def load_search(run_dir, overrides=(), progress: bool = True):
    """The weight-sharing search (enas, or random with shared weights) of a run directory, as its
    checkpoint left it (`overrides` on top, e.g. the device): what `enas derive` works on."""
    from .enas import EnasSearch

    cls = _run_class(run_dir)
    if not issubclass(cls, EnasSearch):
        raise CheckpointError(f"{run_dir} is a search without weight sharing: nothing to derive, its best "
                              f"child is in {Path(run_dir) / 'arch.json'}")
    return cls.load(run_dir, list(overrides), progress=progress)
