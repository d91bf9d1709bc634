"""The three kinds of decision every search space is made of.

A space is a flat list of decisions; an architecture is the flat list of the integers chosen for
them (a `Subset` contributes one bit per option). The controller, the supernets and the strategies
only ever see these kinds, so none of them hard-codes a space.

`anchor=True` marks the decision that closes a node (a layer, a block): the controller's state after
it becomes that node's anchor, which later `Predecessor` and `Subset` decisions attend to.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """Choose one of `num_options` (an op, an activation, a filter size)."""

    name: str
    num_options: int
    labels: tuple[str, ...] = ()
    anchor: bool = False
    group: str = "op"  # decisions of one group share embeddings and temperature in the controller

    kind = "choice"
    width = 1


@dataclass(frozen=True)
class Predecessor:
    """Pick one earlier node: option k means anchor k (the k-th node created so far)."""

    name: str
    num_options: int
    anchor: bool = False
    group: str = "index"

    kind = "predecessor"
    width = 1


@dataclass(frozen=True)
class Subset:
    """Pick any subset of the first `num_options` anchors; one 0/1 token per anchor."""

    name: str
    num_options: int
    anchor: bool = False
    group: str = "skip"

    kind = "subset"

    @property
    def width(self) -> int:
        return self.num_options


Decision = Choice | Predecessor | Subset
