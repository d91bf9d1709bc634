"""enas: neural architecture search by weight sharing, with full NAS and random search as baselines."""
from .arch import Arch
from .controller import Controller, Sample
from .errors import ArchError, CheckpointError, ConfigError, DataError, EnasError
from .spaces import SearchSpace, get_space, list_spaces
from . import zoo
from .nn import build_child, build_supernet, inherit_weights
from .strategies import get_strategy, list_strategies

__version__ = "0.1.0"
__all__ = ["Arch", "ArchError", "CheckpointError", "ConfigError", "Controller", "Sample", "DataError", "EnasError",
           "SearchSpace", "get_space", "list_spaces", "zoo",
           "build_supernet", "build_child", "inherit_weights", "get_strategy", "list_strategies"]
