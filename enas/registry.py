"""The two registries: search spaces and search strategies, each a name -> class table.

They sit at the bottom so that every layer can look a name up (an arch.json names its space, a
config.json its strategy) without importing the layer that defines the classes: a space file or a
strategy file fills its table by declaring its class with `@register` when its package is imported
(`enas/__init__.py` imports both packages), and nothing else knows the names.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from .errors import ArchError, ConfigError, EnasError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by their `name` attribute, in the order they were registered."""

    def __init__(self, what: str, error: type[EnasError]):
        self.what, self.error = what, error
        self._classes: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """The class decorator: registers `cls` under `cls.name` (a later class of the same name replaces it)."""
        self._classes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._classes.pop(name, None)

    def get(self, name: str) -> T:
        """The class registered as `name`; an unknown name is one error line that lists the known ones."""
        if name not in self._classes:
            raise self.error(f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or 'none'}")
        return self._classes[name]

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[T]:
        return iter([self._classes[n] for n in self.names()])


SPACES: Registry = Registry("search space", ArchError)
STRATEGIES: Registry = Registry("strategy", ConfigError)
