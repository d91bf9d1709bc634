"""What sets one run apart from another, for TensorBoard's HPARAMS tab.

A run records its resolved config, not the preset it started from. Its hyperparameters, as the tab
shows them, are the fields in which it differs from the closest preset, plus what every run has:
kind (search, train, compare), strategy, space, task, seed and that preset's name. Its metrics are
the final figures (the search's last validation on the shared weights, the derived or best
architecture's, the final training's valid and test metric), so runs of several strategies, seeds
and settings line up in one table.
"""
from __future__ import annotations

from typing import Any

from .config import to_dict
from .presets import preset, preset_names


def flat(values: dict, prefix: str = "") -> dict:
    """A nested config dict with dotted keys, the names --set takes."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _preset_of(cfg, kind: str, name: str, space: str):
    """Preset `name` of `kind` for `space` on cfg's task, a search preset for cfg's strategy."""
    strategy = {"strategy": cfg.strategy} if kind == "search" else {}
    return preset(kind, cfg.task, name, space, **strategy)


def closest_preset(cfg, kind: str = "search", space: str | None = None) -> str:
    """The preset of `kind` ("search" or "train") that `cfg` differs from in the fewest fields.
    A train config does not name its space: give it."""
    space = space or cfg.space
    mine = flat(to_dict(cfg))
    names = preset_names(kind, cfg.task, space)
    return min(names, default="paper", key=lambda name: len(_differences(
        mine, flat(to_dict(_preset_of(cfg, kind, name, space))))))


def _differences(mine: dict, theirs: dict) -> dict:
    return {k: v for k, v in mine.items() if theirs.get(k) != v}


def _plain(value: Any) -> bool | int | float | str:
    """TensorBoard takes bool, int, float and str; a dict or list becomes its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def run_hparams(cfg, kind: str, space: str | None = None, **extra) -> dict:
    """{"kind", "strategy", "space", "task", "seed", "preset", fields that differ from it..., **extra}."""
    space = space or cfg.space
    preset_kind = "train" if kind == "train" else "search"
    name = closest_preset(cfg, preset_kind, space)
    base = flat(to_dict(_preset_of(cfg, preset_kind, name, space)))
    changed = _differences(flat(to_dict(cfg)), base)
    for key in ("space", "task", "seed", "strategy", "data_dir"):  # own names below; a path says nothing
        changed.pop(key, None)
    out = {"kind": kind, "strategy": getattr(cfg, "strategy", ""), "space": space, "task": cfg.task,
           "seed": cfg.seed, "preset": name}
    out.update({k: _plain(v) for k, v in sorted(changed.items())})
    out.update({k: _plain(v) for k, v in extra.items()})
    return out


__all__ = ["flat", "closest_preset", "run_hparams"]
