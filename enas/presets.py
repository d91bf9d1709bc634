"""Presets: the named recipes (`paper`, `small`, `tiny`) a space registers, resolved into the config of a
final training or of a search by one strategy.

A space declares its presets ({(kind, name): fn(task)}, enas/spaces/): a final-training recipe is a
TrainConfig as it is; a search recipe is a SearchPreset, from which the strategy builds its config
(`Strategy.configure`: the common fields as they are, its own section from what the recipe says, e.g.
ENAS takes the space's controller as it is and full NAS replaces its size with Zoph & Le's). Spaces and
strategies are looked up in their registries (enas/registry.py), so this module imports neither layer.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

from .errors import ConfigError
from .registry import SPACES, STRATEGIES
from .tasks import list_tasks


class _PresetTable(Mapping):
    """Every registered space's presets as one read-only mapping (kind, task, space, name) -> fn(),
    read from the registry each time (a space registered later shows up)."""

    def _table(self) -> dict:
        return {(kind, task, cls.name, name): functools.partial(fn, task)
                for cls in SPACES for (kind, name), fn in cls.presets.items() for task in cls.tasks}

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


PRESETS = _PresetTable()


def preset_names(kind: str, task: str, space: str) -> list[str]:
    """The names of the presets of `kind` for `space` on `task` (none for an unknown space or task)."""
    cls = SPACES.get(space) if space in SPACES else None
    return sorted(n for k, n in cls.presets if k == kind) if cls is not None and task in cls.tasks else []


def preset(kind: str, task: str, name: str, space: str = "enas_rnn", strategy: str = "enas"):
    """The config of `kind` ("search" or "train") that preset `name` of `space` gives on `task`; a search
    config is `strategy`'s (its class, its section)."""
    if task not in list_tasks():
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(list_tasks())}")
    cls = SPACES.get(space) if space in SPACES else None
    if cls is None or task not in cls.tasks or not any(k == kind for k, _ in cls.presets):
        spaces = [c.name for c in SPACES if task in c.tasks and any(k == kind for k, _ in c.presets)]
        raise ConfigError(f"no presets for {space} on {task}; spaces with presets: {', '.join(spaces)}")
    if (kind, name) not in cls.presets:
        known = sorted(p for k, p in cls.presets if k == kind)
        raise ConfigError(f"unknown preset {name!r} for {space} on {task}; known: {', '.join(known)}")
    recipe = cls.presets[(kind, name)](task)
    recipe.task = task
    if kind != "search":
        return recipe
    recipe.space = space  # the space asked for (a registered subclass shares its parent's presets)
    strategy_cls = STRATEGIES.get(strategy)
    reason = strategy_cls.unfit(cls, task)
    if reason is not None:
        raise ConfigError(f"{strategy} cannot search {space} on {task}: {reason}")
    return strategy_cls.configure(recipe, task)


__all__ = ["PRESETS", "preset", "preset_names"]
