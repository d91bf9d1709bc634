"""What every run needs before it starts, a search or a final training alike: the seed, the device and
the header of its config.json."""
from __future__ import annotations

import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """"auto" = the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name} asked for, but no CUDA device is available")
    return device


def absolute_data_dir(data_dir: str) -> str:
    """data_dir made absolute, for a file that records where a run read its data and is read from any
    directory ("" stays "": the task's default place)."""
    return str(Path(data_dir).expanduser().resolve()) if data_dir else ""


def run_header(config: dict) -> dict:
    """config.json: the resolved config plus what produced it."""
    from . import __version__

    return {"config": config, "enas": __version__, "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
