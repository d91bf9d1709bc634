"""Search strategies: the registry (base.py), the shared-weights engine (engine.py) and the child pool
(pool.py) they build on, and one file per strategy.

Every module of this package is imported here, so a strategy registers itself (`@register`) by being a
file in it. The functions below run any registered strategy the same way, for the CLI, the comparison
harness and the Python API; they ask the registry, never a strategy's name.
"""
import importlib
import pkgutil
from pathlib import Path

from ..errors import CheckpointError
from ..presets import preset
from .base import Strategy, get_strategy, list_strategies, next_train, register, strategy_of

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def check_search(cfg) -> None:
    """What a new search needs before it writes anything: a valid config, and what its strategy checks
    (a search without weight sharing, whose children each load the data: the device, the executor and
    the data)."""
    get_strategy(cfg.strategy).check(cfg)


def start_search(cfg, run_dir, progress: bool = True) -> Strategy:
    """A new search of `cfg.strategy` in run_dir (writes RUN/config.json)."""
    return get_strategy(cfg.strategy).start(cfg, run_dir, progress=progress)


def resume_search(run_dir, overrides=(), progress: bool = True) -> Strategy:
    """The search of run_dir, ready to continue where its checkpoint stopped."""
    return strategy_of(run_dir).resume(run_dir, list(overrides), progress=progress)


def load_search(run_dir, overrides=(), progress: bool = True) -> Strategy:
    """The weight-sharing search of a run directory, as its checkpoint left it (`overrides` on top, e.g.
    the device): what `enas derive` and `enas analyze` work on."""
    cls = strategy_of(run_dir)
    if not cls.shared_weights:
        raise CheckpointError(f"{run_dir} is a search without weight sharing ({cls.name}): nothing to derive, its "
                              f"best child is in {Path(run_dir) / 'arch.json'}")
    return cls.load(run_dir, list(overrides), progress=progress)


def derive(run_dir, samples: int | None = None, progress: bool = True) -> dict | None:
    """`enas derive RUN`: writes RUN/arch.json and returns it; None when stopped."""
    return load_search(run_dir, progress=progress).derive(samples)


__all__ = ["Strategy", "register", "get_strategy", "list_strategies", "strategy_of", "next_train", "preset",
           "check_search", "start_search", "resume_search", "load_search", "derive"]
