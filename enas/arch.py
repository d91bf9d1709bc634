"""`Arch`: an architecture as data, the flat list of a controller's decisions."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .errors import ArchError
from .registry import SPACES

if TYPE_CHECKING:  # an Arch reads its space through the registry, so arch.py sits below the spaces
    from .spaces.base import SearchSpace


@dataclass(frozen=True)
class Arch:
    """A validated architecture of `space`: frozen, hashable, printable in the official arc format."""

    space: SearchSpace
    tokens: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        self.space.validate(self.tokens)

    def __str__(self) -> str:
        return " ".join(map(str, self.tokens))

    def __repr__(self) -> str:
        return f"Arch({self.space.name}, '{self}')"

    @classmethod
    def parse(cls, space: SearchSpace, text: str) -> "Arch":
        """Read an arc string such as "0 0 0 1 1 2"; bad input raises ArchError naming the position."""
        words = str(text).replace(",", " ").split()
        tokens = []
        for pos, w in enumerate(words):
            try:
                tokens.append(int(w))
            except ValueError:
                raise ArchError(f"{space.name}: position {pos} is {w!r}, not an integer") from None
        return cls(space, tuple(tokens))

    @classmethod
    def of(cls, space: SearchSpace, arch) -> "Arch":
        """`arch` (an Arch, or a sequence or LongTensor of tokens) as an Arch of `space`; an Arch of
        another space is an ArchError."""
        if not isinstance(arch, Arch):
            arch = cls(space, tuple(int(t) for t in arch))
        if arch.space != space:
            raise ArchError(f"architecture of {arch.space!r} given for {space!r}")
        return arch

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The tokens as a LongTensor [num_tokens], the form the supernets read."""
        return torch.tensor(self.tokens, dtype=torch.long, device=device)

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {"space": self.space.name, "options": dict(self.space.options), "arch": str(self), **extra}

    @classmethod
    def from_json(cls, obj: dict[str, Any] | str) -> "Arch":
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as e:
                raise ArchError(f"not a JSON architecture: {e}") from None
        try:
            space = SPACES.get(obj["space"])(**obj.get("options", {}))
            return cls.parse(space, obj["arch"])
        except (KeyError, TypeError):
            raise ArchError("an architecture JSON needs the keys 'space' and 'arch'") from None
