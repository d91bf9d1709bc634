"""Search spaces: the decision kinds, the registry, and one file per registered space."""
from .base import SearchSpace, get_space, list_spaces, register
from .decisions import Choice, Decision, Predecessor, Subset
from . import enas_macro, enas_micro, enas_rnn  # noqa: F401  (registers)

__all__ = ["SearchSpace", "get_space", "list_spaces", "register", "Choice", "Decision", "Predecessor", "Subset"]
