"""Search spaces: the decision kinds, the registry, and one file per registered space.

Every module of this package is imported here, so a space registers itself (`@register`) by being
a file in it: adding a space is adding one file.
"""
import importlib
import pkgutil

from .base import SearchSpace, get_space, get_space_class, list_spaces, register
from .decisions import Choice, Decision, Predecessor, Subset

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SearchSpace", "get_space", "get_space_class", "list_spaces", "register", "Choice", "Decision",
           "Predecessor", "Subset"]
