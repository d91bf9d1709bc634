"""What every strategy and the final training share: seeding, the device, the run header."""
from __future__ import annotations

import platform
import random
import sys

import numpy as np
import torch

from ..errors import ConfigError


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


def run_header(config: dict) -> dict:
    """config.json: the resolved config plus what produced it."""
    from .. import __version__

    return {"config": config, "enas": __version__, "torch": torch.__version__,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}


def make_controller(space, c, device: torch.device):
    """The LSTM policy and its Adam optimiser from a ControllerConfig (OFF utils.get_train_ops: Adam
    with beta1 = 0 and eps 1e-3 for the controller)."""
    from ..controller import MICRO_OP_BIAS, MICRO_OP_BIAS_INIT, Controller

    controller = Controller(space, hidden_size=c.hidden_size, num_layers=c.num_layers,
                            temperature=c.temperature or None, tanh_constant=c.tanh_constant or None,
                            init_range=c.init_range, op_tanh_reduce=c.op_tanh_reduce,
                            op_bias=MICRO_OP_BIAS if c.op_bias else None,
                            op_bias_init=MICRO_OP_BIAS_INIT if c.op_bias else None,
                            skip_target=c.skip_target, index_distance_penalty=c.index_distance_penalty or None,
                            scale_index_input=c.scale_index_input, anchors=c.anchors,
                            indices_first=c.indices_first).to(device)
    optimizer = torch.optim.Adam(controller.parameters(), lr=c.lr, betas=(c.adam_beta1, 0.999), eps=1e-3)
    return controller, optimizer
