"""Model building blocks and the registry that maps a search space to its supernet and child.

`build_supernet`, `build_child` and `inherit_weights` dispatch on `space.name`; a space's models
register themselves with `register_models` (image spaces add theirs beside the recurrent one).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ..errors import ConfigError
from .rnn_cell import cell_forward, naive_cell_forward
from .rnn_lm import RNNChild, RNNSupernet, inherit_rnn_weights


class _Models(NamedTuple):
    supernet: Callable[..., Any]  # (space, **kw) -> nn.Module
    child: Callable[..., Any]  # (space, arch, **kw) -> nn.Module
    inherit: Callable[..., Any]  # (child, supernet, arch) -> child


_MODELS: dict[str, _Models] = {}


def register_models(space_name: str, supernet, child, inherit) -> None:
    _MODELS[space_name] = _Models(supernet, child, inherit)


def _models(space) -> _Models:
    name = getattr(space, "name", space)
    if name not in _MODELS:
        raise ConfigError(f"no models registered for search space {name!r}; registered: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def build_supernet(space, **kw):
    """The weight-sharing model of every architecture in `space`."""
    return _models(space).supernet(space, **kw)


def build_child(space, arch, **kw):
    """A standalone model holding only `arch`'s weights."""
    return _models(space).child(space, arch, **kw)


def inherit_weights(child, supernet, arch=None):
    """Copy `arch`'s slices of `supernet` into `child` (in place); returns the child."""
    return _models(child.space).inherit(child, supernet, arch)


register_models("enas_rnn", RNNSupernet, RNNChild, inherit_rnn_weights)

__all__ = ["build_supernet", "build_child", "inherit_weights", "register_models",
           "RNNSupernet", "RNNChild", "cell_forward", "naive_cell_forward"]

# Image spaces: enas/nn/macro.py and enas/nn/micro.py (ops in enas/nn/cnn_ops.py).
from . import macro, micro  # noqa: E402
register_models("enas_macro", macro.supernet, macro.child, macro.inherit)
register_models("enas_micro", micro.supernet, micro.child, micro.inherit)
