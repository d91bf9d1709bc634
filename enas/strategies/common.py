"""What every strategy and the final training share: seeding, the device, the run header, and the
config and state of a run read back from its directory."""
from __future__ import annotations

import platform
import random
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..config import apply_overrides, from_dict, to_dict
from ..errors import CheckpointError, ConfigError, EnasError
from ..rundir import read_json

# What decides where code runs and what starts. A run directory may come from someone else, so these
# come from the command line (or their defaults) on every start, resume and derive, never from it.
RUNTIME_KEYS = ("device", "executor", "workers", "ray_address")
# What the saved state is made of (shapes, the space, what the cursor counts): a resumed run keeps them.
FIXED_KEYS = ("space", "space_options", "task", "strategy", "weight_sharing", "batch_size", "eval_batch_size",
              "num_valid", "model", "controller.hidden_size", "controller.num_layers", "controller.op_bias",
              "controller.num_aggregate")


# Controller keywords of a space's `controller_options` that ControllerConfig.op_bias switches on and off.
OP_BIAS_KEYS = ("op_bias", "op_bias_init")


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


def check_task(cfg) -> None:
    """What a search asks of its task, checked before any work from what the task class declares
    (enas/tasks/__init__.py): a task that scores on held-out training images needs some."""
    from ..tasks import task_class

    if task_class(cfg.task).holds_out_valid and cfg.num_valid < 1:
        raise ConfigError("a search on images scores architectures on held-out training images: num_valid "
                          "must be >= 1")


def make_controller(space, c, device: torch.device):
    """The LSTM policy and its Adam optimiser from a ControllerConfig (OFF utils.get_train_ops: Adam
    with beta1 = 0 and eps 1e-3 for the controller). The space's `controller_options` are passed on,
    its op biases (e.g. the micro space's official ones) only when `c.op_bias` switches them on."""
    from ..controller import Controller

    space_options = {k: v for k, v in space.controller_options.items() if c.op_bias or k not in OP_BIAS_KEYS}
    controller = Controller(space, hidden_size=c.hidden_size, num_layers=c.num_layers,
                            temperature=c.temperature or None, tanh_constant=c.tanh_constant or None,
                            init_range=c.init_range, op_tanh_reduce=c.op_tanh_reduce, **space_options,
                            skip_target=c.skip_target, index_distance_penalty=c.index_distance_penalty or None,
                            scale_index_input=c.scale_index_input, anchors=c.anchors,
                            indices_first=c.indices_first).to(device)
    optimizer = torch.optim.Adam(controller.parameters(), lr=c.lr, betas=(c.adam_beta1, 0.999), eps=1e-3)
    return controller, optimizer


def run_config(run_dir) -> dict:
    """The config a run directory records (RUN/config.json, "config"), as a dict."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} holds no run (no config.json)")
    header = read_json(path, "the run's config")
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict):
        raise CheckpointError(f"{path} holds no config (a JSON object with a \"config\" object); restore it from "
                              f"a copy or start the run over with --overwrite")
    return header["config"]


def restore(config_class: type, run_dir, overrides=()) -> tuple[Any, dict]:
    """(config, checkpoint state) of a run to resume or derive from.

    The config is RUN/config.json's with RUNTIME_KEYS reset to their defaults, then `overrides` (the
    command line) on top; the checkpoint contributes only state. A checkpoint that disagrees with
    config.json on what its state is made of (FIXED_KEYS), and an override that would change one of
    those, are refused with one line.
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    state = ckpt.load_checkpoint(path)
    recorded = run_config(run_dir)
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path} holds no config (a dict); it is damaged or not a checkpoint "
                              f"of this program")
    differ = _differences(saved, recorded)
    if differ:
        raise CheckpointError(f"checkpoint {path} does not belong to {run_dir / 'config.json'}: they differ in "
                              f"{', '.join(differ)}; restore the run's own config.json, or start over with "
                              f"--overwrite")
    try:
        cfg = from_dict(config_class, recorded)
    except (TypeError, AttributeError):
        raise CheckpointError(f"{run_dir / 'config.json'} is not a {config_class.__name__} (a section is not "
                              f"an object); restore it from a copy") from None
    defaults = config_class()
    for key in RUNTIME_KEYS:
        if hasattr(cfg, key):
            setattr(cfg, key, getattr(defaults, key))
    cfg = apply_overrides(cfg, list(overrides))
    changed = _differences(to_dict(cfg), recorded)
    if changed:
        key = changed[0]
        raise ConfigError(f"{key} cannot change when a run resumes (the run has {_get(recorded, key)!r}, "
                          f"--set gives {_get(to_dict(cfg), key)!r}): its saved state is made for it; start a "
                          f"new run (another --logdir, or --overwrite) to change it")
    return cfg, state


def _get(values: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        values = values.get(name) if isinstance(values, dict) else None
    return values


def _differences(a: dict, b: dict) -> list[str]:
    """The dotted names under FIXED_KEYS whose values differ between two config dicts, leaf by leaf."""
    def leaves(x: Any, y: Any, key: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [k for name in sorted(set(x) | set(y), key=str) for k in leaves(x.get(name), y.get(name),
                                                                                   f"{key}.{name}")]
        return [] if x == y else [key]
    return [k for key in FIXED_KEYS for k in leaves(_get(a, key), _get(b, key), key)]


@contextmanager
def reading_checkpoint(path) -> Iterator[None]:
    """Turn what a checkpoint lacking an entry, or holding one that does not fit, raises while its state
    is loaded into one CheckpointError line."""
    try:
        yield
    except EnasError:
        raise
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks the entry {e.args[0]!r}; it is damaged or not a "
                              f"checkpoint of this kind of run") from None
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit this run ({first}); it is damaged or not a "
                              f"checkpoint of this kind of run") from None
