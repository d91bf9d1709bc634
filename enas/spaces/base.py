"""`SearchSpace`: the single source of truth about a space's decisions.

A concrete space only lists its decisions (and may add a semantic check); sampling, validation,
counting and the token layout are generic here.
"""
from __future__ import annotations

import math
import random
from functools import cached_property
from typing import Any, Callable, ClassVar

from ..arch import Arch
from ..errors import ArchError
from ..registry import SPACES
from .decisions import Choice, Decision, Predecessor, Subset


class SearchSpace:
    """A registered search space. Subclasses set `name`, `defaults` and build `decisions`.

    Spaces are immutable values: two spaces are equal when their name and options are.

    The class is also the space's one registration: besides its decisions it declares
    - `tasks`: the tasks its models fit;
    - `models`: the module under `enas.nn` that builds them (imported when first needed, since `nn`
      sits above `spaces`), with `supernet(space, **kw)`, `child(space, arch, **kw)` and
      `param_map(child, supernet) -> list[ParamSlice]` (enas/nn/param_map.py);
    - `presets`: {(kind, preset name): fn(task) -> SearchPreset or TrainConfig}, kind "search" or "train";
    - `controller_options`: keyword values of `Controller` that belong to the space (op biases);
    - `text(tokens)` and `figure(tokens)`: how an architecture is drawn in TensorBoard.
    """

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    tasks: ClassVar[tuple[str, ...]] = ()
    models: ClassVar[str] = ""
    presets: ClassVar[dict[tuple[str, str], Callable[[str], Any]]] = {}
    controller_options: ClassVar[dict[str, Any]] = {}
    # Anchors that exist before any decision, e.g. the two cell inputs of a micro cell.
    initial_anchors: int = 0
    # Decision indices where a new cell starts: a controller drops its anchors there and creates
    # `initial_anchors` fresh ones (the micro space's reduction cell).
    anchor_resets: tuple[int, ...] = ()

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise ArchError(f"{self.name}: unknown option(s) {unknown}; known: {sorted(self.defaults)}")
        self.options = {**self.defaults, **options}
        self.decisions: tuple[Decision, ...] = tuple(self.build_decisions())

    # --- what subclasses provide -------------------------------------------------------------
    def build_decisions(self) -> list[Decision]:
        raise NotImplementedError

    def infer_options(self, num_tokens: int) -> dict[str, Any]:
        """Options under which an arc of `num_tokens` numbers fits (for arc strings given bare)."""
        return {}

    def check(self, tokens: tuple[int, ...]) -> None:
        """Space-specific constraints beyond each token's range (none by default)."""

    def text(self, tokens: tuple[int, ...]) -> str:
        """The architecture in words, for TensorBoard's text tab (the arc string by default)."""
        return f"{self.name}: {' '.join(map(str, tokens))}"

    def figure(self, tokens: tuple[int, ...]):
        """The architecture as a matplotlib Figure (import matplotlib inside); by default `text` drawn
        as it is, so every space has a picture."""
        from .drawing import text_figure

        return text_figure(self.text(tokens))

    def model_module(self):
        """The module that builds this space's supernet and child (`models`)."""
        import importlib

        return importlib.import_module(self.models)

    # --- value semantics ---------------------------------------------------------------------
    @cached_property
    def key(self) -> tuple:
        return (self.name, tuple(sorted(self.options.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"get_space({self.name!r}, {opts})"

    def __getattr__(self, item: str) -> Any:
        # options read as attributes: space.num_nodes
        options = self.__dict__.get("options", {})
        if item in options:
            return options[item]
        raise AttributeError(item)

    # --- token layout ------------------------------------------------------------------------
    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Position of each decision's first token in the flat token list."""
        pos, out = 0, []
        for d in self.decisions:
            out.append(pos)
            pos += d.width
        return tuple(out)

    @property
    def num_tokens(self) -> int:
        return sum(d.width for d in self.decisions)

    def positions(self, prefix: str = "", suffix: str = "") -> list[int]:
        """Token positions of the width-1 decisions whose name matches, in order."""
        return [o for d, o in zip(self.decisions, self.offsets)
                if d.name.startswith(prefix) and d.name.endswith(suffix)]

    def size(self) -> int:
        """Number of distinct token lists (before any space-specific constraint)."""
        return math.prod(2 ** d.width if isinstance(d, Subset) else d.num_options for d in self.decisions)

    # --- sampling and validation -------------------------------------------------------------
    def sample(self, seed: int | None = None, rng: random.Random | None = None) -> Arch:
        """A uniformly random architecture (what random search draws)."""
        rng = rng if rng is not None else random.Random(seed)
        while True:
            tokens: list[int] = []
            for d in self.decisions:
                if isinstance(d, Subset):
                    tokens += [rng.randrange(2) for _ in range(d.width)]
                else:
                    tokens.append(rng.randrange(d.num_options))
            try:
                return Arch(self, tuple(tokens))
            except ArchError:  # a space-specific constraint failed: draw again
                continue

    def validate(self, tokens: tuple[int, ...]) -> None:
        if len(tokens) != self.num_tokens:
            raise ArchError(f"{self.name}: expected {self.num_tokens} numbers, got {len(tokens)}")
        for d, o in zip(self.decisions, self.offsets):
            hi = 2 if isinstance(d, Subset) else d.num_options
            for k in range(d.width):
                t = tokens[o + k]
                if not 0 <= t < hi:
                    raise ArchError(f"{self.name}: position {o + k} ({d.name}) is {t}, must be in 0..{hi - 1}")
        self.check(tokens)

    def describe(self) -> str:
        lines = [f"{self.name}  ({self.num_tokens} tokens, {self.size():.3g} architectures)"]
        for d, o in zip(self.decisions, self.offsets):
            what = {Choice: "choice", Predecessor: "earlier node", Subset: "subset"}[type(d)]
            labels = f" {list(d.labels)}" if getattr(d, "labels", ()) else ""
            lines.append(f"  [{o}] {d.name}: {what} of {d.num_options}{labels}")
        return "\n".join(lines)


def whole_option(space: str, name: str, value: Any, low: int, high: int) -> int:
    """An integer option of a space (a number of nodes, layers, blocks) within low..high; the bound keeps
    a mistyped or hostile value (an arc string of a million numbers, an edited arch.json) from building
    a network no machine holds."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArchError(f"{space}: {name} must be a whole number in {low}..{high}, got {value!r}")
    return value


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """The class decorator that registers a space under its `name` (enas/registry.py)."""
    return SPACES.register(cls)


def get_space_class(name: str) -> type[SearchSpace]:
    """The registered class of space `name`: its registration (tasks, presets, ...) without options."""
    return SPACES.get(name)


def get_space(name: str, **options: Any) -> SearchSpace:
    """The registered space `name` with `options` over its defaults."""
    return get_space_class(name)(**options)


def list_spaces() -> list[str]:
    return SPACES.names()
