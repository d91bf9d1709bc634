"""Which slice of the supernet each child tensor is: the one fact weight sharing rests on.

A space's model module declares `param_map(child, supernet) -> list[ParamSlice]`: for every tensor of
the child's state_dict (parameters and buffers), where its values live in the supernet. Inheritance
(`inherit`) and "only the chosen weights get gradient" (`used_mask`) then follow generically, for
every registered space.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import ArchError, ConfigError

Index = tuple  # a tuple of ints and slices, applied as tensor[index]; () is the whole tensor


class ParamSlice(NamedTuple):
    """child_state[child][child_index] == supernet_state[supernet][index] once inherited."""

    child: str
    supernet: str
    index: Index = ()
    child_index: Index = ()


@torch.no_grad()
def inherit(child, supernet, slices: list[ParamSlice]) -> None:
    """Copy every mapped slice of `supernet` into `child` (in place). Every child tensor must be
    covered; a shape that differs means the two were built with different sizes."""
    source, target = supernet.state_dict(keep_vars=True), child.state_dict(keep_vars=True)
    covered = {s.child for s in slices}
    missing = sorted(set(target) - covered)
    if missing:
        raise ConfigError(f"{child.space.name}: no supernet slice for child tensor(s) {missing}")
    for s in slices:
        dst, src = target[s.child][s.child_index], source[s.supernet][s.index]
        if dst.shape != src.shape:
            raise ConfigError(f"supernet and child differ in size: {s.child}{list(dst.shape)} "
                              f"against {s.supernet}{list(src.shape)}")
        dst.copy_(src)


def used_mask(supernet, slices: list[ParamSlice]) -> dict[str, torch.Tensor]:
    """name -> bool tensor of the supernet parameter's shape: True where some child tensor reads it."""
    masks = {name: torch.zeros_like(p, dtype=torch.bool) for name, p in supernet.named_parameters()}
    for s in slices:
        if s.supernet in masks:
            masks[s.supernet][s.index] = True
    return masks


def check_arch(child, supernet, arch):
    """The architecture a child inherits for: its own, and of the supernet's space."""
    from ..arch import Arch

    arch = child.arch if arch is None else Arch.of(supernet.space, arch)
    if arch != child.arch:
        raise ArchError(f"child is '{child.arch}', asked to inherit '{arch}'")
    if supernet.space != child.space:
        raise ArchError(f"supernet space {supernet.space!r} differs from child space {child.space!r}")
    return arch
