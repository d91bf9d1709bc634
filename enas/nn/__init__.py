"""Model building blocks, and the three calls every strategy makes on any registered space.

A space names its model module (`SearchSpace.models`); `build_supernet`, `build_child` and
`inherit_weights` read it there, so nothing here knows a space by name.
"""
from __future__ import annotations

from .param_map import ParamSlice, check_arch, inherit, used_mask
from .rnn_cell import cell_forward, naive_cell_forward
from .rnn_lm import RNNChild, RNNSupernet


def build_supernet(space, **kw):
    """The weight-sharing model of every architecture in `space`."""
    return space.model_module().supernet(space, **kw)


def build_child(space, arch, **kw):
    """A standalone model holding only `arch`'s weights."""
    return space.model_module().child(space, arch, **kw)


def param_map(child, supernet) -> list[ParamSlice]:
    """Where each of the child's tensors lives in the supernet (enas/nn/param_map.py)."""
    return child.space.model_module().param_map(child, supernet)


def inherit_weights(child, supernet, arch=None):
    """Copy `arch`'s slices of `supernet` into `child` (in place); returns the child."""
    check_arch(child, supernet, arch)
    inherit(child, supernet, param_map(child, supernet))
    return child


__all__ = ["build_supernet", "build_child", "inherit_weights", "param_map", "used_mask", "ParamSlice",
           "RNNSupernet", "RNNChild", "cell_forward", "naive_cell_forward"]
