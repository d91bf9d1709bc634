"""Run configuration: typed dataclasses, the presets every space registers (`paper`, `small`, `tiny`)
and `--set key=value`.

Every field is addressable by its dotted name (`seed`, `controller.lr`, `model.hidden_size`) and every
value given as text is checked against the field's type; unknown keys and bad values raise
ConfigError, which the CLI prints as one line.
"""
from __future__ import annotations

import ast
import copy
import functools
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from .errors import ConfigError


@dataclass
class ModelConfig:
    """The network a space is embedded in (language model or image classifier)."""

    hidden_size: int = 1000       # RNN hidden = embedding size (tied decoder)
    dropout_e: float = 0.0        # embedding: drop whole words
    dropout_i: float = 0.0        # embedding output, before the cell
    dropout_x: float = 0.0        # cell input x_t, one mask per batch
    dropout_h: float = 0.0        # recurrent input h_{t-1}, one mask per batch
    dropout_o: float = 0.0        # cell output, before the decoder
    max_hidden_norm: float = 0.0  # 0 = no clipping of the hidden state's norm
    init_range: float = 0.04
    decoder_bias: bool = True     # a per-word bias on the tied decoder (ENAS-pytorch; see nn/rnn_lm.py)
    # image networks
    channels: int = 20            # filters of the first layer
    num_layers: int = 0           # micro: cells per stage N; 0 = as the space says (macro: its layers)
    dropout: float = 0.0          # before the classifier (1 - the official keep_prob)
    drop_path: float = 0.0        # micro: drop-path rate (1 - drop_path_keep_prob), ramped up linearly
    aux_head: bool = False        # micro final: auxiliary head after the second reduction
    style: str = "search"         # "search": the supernet's network; "final": the official final one


@dataclass
class OptimConfig:
    """SGD with a per-epoch schedule: "exp" (the ENAS PTB decay) or "cosine" (warm restarts, CIFAR)."""

    lr: float = 20.0              # the initial lr ("cosine": the maximum)
    schedule: str = "exp"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 0.25       # clip the global gradient norm at this value
    lr_decay: float = 1.0         # multiply the lr by this every epoch from lr_decay_start on
    lr_decay_start: int = 0       # first epoch (0-based) whose lr is decayed
    lr_min: float = 0.0
    lr_T0: int = 10               # cosine: epochs of the first cycle
    lr_T_mul: int = 2             #   and the factor by which each next cycle is longer


@dataclass
class ControllerConfig:
    hidden_size: int = 100
    num_layers: int = 1           # stacked LSTM layers
    lr: float = 3.5e-4
    adam_beta1: float = 0.0
    temperature: float = 5.0      # 0 = off
    tanh_constant: float = 2.5    # 0 = off
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.95
    op_tanh_reduce: float = 1.0   # micro: ops use tanh_constant / op_tanh_reduce
    op_bias: bool = False         # the space's op-logit biases (micro: the official learned and fixed ones)
    num_aggregate: int = 1        # architectures whose gradients are averaged per update
    steps: int = 2000             # controller updates per epoch
    reward_c: float = 80.0        # reward = reward_c / valid_ppl
    init_range: float = 0.1
    grad_clip: float = 0.0        # 0 = off
    index_distance_penalty: float = 0.0  # predecessor logits lose (i - j)^2 * this (0 = off)
    scale_index_input: bool = False      # feed a chosen anchor divided by (0.1 + distance)
    skip_target: float = 0.4      # spaces with skip connections: KL penalty towards this skip rate
    skip_weight: float = 0.0      #   with this weight (0 = off)
    anchors: str = "after"        # which controller state stands for a node: after | own_step | before
    indices_first: bool = True    # a node's predecessor decisions before its ops (official micro order)
    # Memorisation regulariser (Adam & Lorraine 2019, arXiv:1904.00438; enas/memory.py): the controller
    # also learns to reconstruct architectures it sampled earlier. ENAS search only: random search
    # trains no controller and full NAS (strategy "nas") does not use it. Epochs are counted from 1.
    memory: bool = False          # on/off
    memory_start_epoch: int = 5   # from the end of this epoch on, store samples after every epoch:
    memory_per_epoch: int = 1000  #   this many per epoch
    memory_size: int = 10000      #   until this many are held; then each epoch overwrites
    memory_replace: int = 100     #   this many random rows with new samples
    memory_loss_start_epoch: int = 10  # from this epoch's controller updates on, every update adds
    memory_weight: float = 1.0    #   this times the negative log-likelihood (teacher forced, mean over rows)
    memory_batch: int = 100       #   of this many rows drawn uniformly from the memory


@dataclass
class SearchConfig:
    space: str = "enas_rnn"
    space_options: dict = field(default_factory=dict)
    task: str = "ptb"
    data_dir: str = ""
    strategy: str = "enas"
    seed: int = 0
    device: str = "auto"          # auto = cuda if available else cpu
    epochs: int = 150
    batch_size: int = 64
    bptt: int = 35
    eval_batch_size: int = 64     # columns of the validation batch a reward is computed on
    eval_max_batches: int = 0     # epoch-end validation on this many batches (0 = the whole split)
    shared_steps: int = 0         # shared-weight steps per epoch; 0 = one pass over the training data
    derive_samples: int = 100
    log_every: int = 50
    num_valid: int = 5000         # images: training images held out for rewards (official: 5000)
    cutout: int = 0               # images: cutout square side (0 = off)
    aux_weight: float = 0.4       # images: weight of the auxiliary head's loss (official micro: 0.4)
    # full NAS and random search without weight sharing (strategies "nas", "random")
    weight_sharing: bool = True   # random: train a supernet on uniform archs (Li & Talwalkar) or not
    nas_updates: int = 10         # controller updates, each over controller.num_aggregate children
    child_epochs: int = 1         # training budget of every child, from scratch
    child_max_steps: int = 0      # cap on a child's steps per epoch (0 = whole epochs)
    executor: str = "local"       # where children train: "local" or "ray"
    workers: int = 1              # local: worker processes (1 = in this process)
    ray_address: str = ""         # ray: "" starts a local instance, "auto" joins `ray start`
    cpus_per_child: float = 1.0
    gpus_per_child: float = 0.0
    # GPU: the shared step and the reward evaluation of a supernet that reads its architecture on the
    # device (enas_rnn) are replayed as CUDA graphs (enas/cuda_graph.py); off = run them eagerly
    cuda_graphs: bool = True
    bf16: bool = False            # bf16 autocast of the supernet's forwards (search; the loss stays float32)
    model: ModelConfig = field(default_factory=ModelConfig)
    shared: OptimConfig = field(default_factory=OptimConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)


@dataclass
class TrainConfig:
    """Final training of a fixed architecture from scratch."""

    task: str = "ptb"
    data_dir: str = ""
    seed: int = 0
    device: str = "auto"
    epochs: int = 150
    batch_size: int = 64
    bptt: int = 35
    eval_batch_size: int = 10
    eval_max_batches: int = 0     # validation / test on this many batches (0 = the whole split)
    max_steps: int = 0            # 0 = whole epochs; otherwise stop each epoch after this many steps
    log_every: int = 50
    num_valid: int = 0            # images: held-out training images (0 = train on all, keep the last model)
    cutout: int = 0
    aux_weight: float = 0.4
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


# --- presets ------------------------------------------------------------------------------------
# Each registered space declares its presets ({(kind, name): fn(task) -> config}, enas/spaces/); the
# spaces are looked up when a preset is asked for, since config sits below them.

def _space_classes() -> dict:
    from .spaces import get_space_class, list_spaces

    return {name: get_space_class(name) for name in list_spaces()}


class _PresetTable(Mapping):
    """Every registered space's presets as one read-only mapping (kind, task, space, name) -> fn(),
    read from the registry each time (a space registered later shows up)."""

    def _table(self) -> dict:
        return {(kind, task, space, name): functools.partial(fn, task)
                for space, cls in _space_classes().items() for (kind, name), fn in cls.presets.items()
                for task in cls.tasks}

    def __getitem__(self, key):
        return self._table()[key]

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


PRESETS = _PresetTable()


def preset_names(kind: str, task: str, space: str) -> list[str]:
    """The names of the presets of `kind` for `space` on `task` (none for an unknown space or task)."""
    cls = _space_classes().get(space)
    return sorted(n for k, n in cls.presets if k == kind) if cls is not None and task in cls.tasks else []


def _nas_controller(c: ControllerConfig, lr: float) -> None:
    """The controller of full NAS (Zoph & Le 2017, sec. 4.1 and 4.2): a two-layer LSTM of 35 units per
    layer, trained with Adam at the task's lr (6e-4 on CIFAR-10, 5e-4 on Penn Treebank: the task class's
    `nas_controller_lr`), weights ~ U(-0.08, 0.08). The paper names no Adam betas, hence Adam's own
    beta1 = 0.9 (ENAS's 0 is its official code's). What the paper leaves open (logit shaping, entropy
    bonus, baseline decay, the space's controller options) stays as the search preset has it."""
    c.hidden_size, c.num_layers, c.init_range, c.adam_beta1 = 35, 2, 0.08, 0.9
    c.lr = lr


def preset(kind: str, task: str, name: str, space: str = "enas_rnn", strategy: str = "enas"):
    """The preset config of `kind` ("search" or "train") for `space` on `task`; a search preset for
    `strategy` "nas" gets the controller of full NAS (`_nas_controller`)."""
    from .tasks import list_tasks, task_class

    if task not in list_tasks():
        raise ConfigError(f"unknown task {task!r}; known: {', '.join(list_tasks())}")
    classes = _space_classes()
    cls = classes.get(space)
    if cls is None or task not in cls.tasks or not any(k == kind for k, _ in cls.presets):
        spaces = sorted(s for s, c in classes.items() if task in c.tasks and any(k == kind for k, _ in c.presets))
        raise ConfigError(f"no presets for {space} on {task}; spaces with presets: {', '.join(spaces)}")
    if (kind, name) not in cls.presets:
        known = sorted(p for k, p in cls.presets if k == kind)
        raise ConfigError(f"unknown preset {name!r} for {space} on {task}; known: {', '.join(known)}")
    cfg = cls.presets[(kind, name)](task)
    cfg.task = task
    if kind == "search":
        cfg.space, cfg.strategy = space, strategy  # the space asked for (a registered subclass shares presets)
        if strategy == "nas":
            _nas_controller(cfg.controller, task_class(task).nas_controller_lr)
    return cfg


# --- dotted access ------------------------------------------------------------------------------

def _resolve(cfg: Any, dotted: str) -> tuple[Any, str, Any]:
    """(owner object, field name, field type) of a dotted key; dict fields take any sub-key."""
    parts = dotted.split(".")
    obj = cfg
    for i, name in enumerate(parts):
        if isinstance(obj, dict):
            if i != len(parts) - 1:
                raise ConfigError(f"unknown config key {dotted!r}")
            return obj, name, Any
        hints = typing.get_type_hints(type(obj))
        if name not in hints:
            known = ", ".join(f.name for f in fields(obj))
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown config key {dotted!r} (at {where}: {known})")
        if i == len(parts) - 1:
            return obj, name, hints[name]
        obj = getattr(obj, name)
    raise ConfigError(f"unknown config key {dotted!r}")


def _convert(text: str, typ: Any, key: str) -> Any:
    if typ is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} expects true or false, got {text!r}")
    if typ in (int, float, str):
        try:
            value = typ(text)
        except ValueError:
            raise ConfigError(f"{key} expects {typ.__name__}, got {text!r}") from None
        if typ is float and (value != value or value in (float("inf"), float("-inf"))):
            raise ConfigError(f"{key} must be a finite number, got {text!r}")
        return value
    if typ is Any and text.lower() in ("true", "false"):  # a space option: as written in config.json
        return text.lower() == "true"
    if typ is Any or typ is dict:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, RecursionError, MemoryError):
            value = text
        if typ is dict and not isinstance(value, dict):
            raise ConfigError(f"{key} expects a dict like {{'num_nodes': 8}}, got {text!r}")
        return value
    if is_dataclass(typ):
        raise ConfigError(f"{key} is a section; set one of its fields, e.g. {key}.{fields(typ)[0].name}=...")
    raise ConfigError(f"{key}: cannot set a value of type {typ}")


def apply_overrides(cfg: Any, pairs: list[str]) -> Any:
    """A copy of cfg with `key=value` strings applied in order; cfg itself is left as it was."""
    cfg = copy.deepcopy(cfg)
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        owner, name, typ = _resolve(cfg, key.strip())
        value = _convert(text.strip(), typ, key.strip())
        if isinstance(owner, dict):
            owner[name] = value
        else:
            setattr(owner, name, value)
    validate(cfg)
    return cfg


def validate(cfg: Any) -> None:
    """Type and range checks, for values given with --set and for configs read back from a run
    directory: every value of its field's type, every number finite, counts and sizes >= 1, learning
    rates > 0, the seed in 0 .. 2**32 - 1 (what numpy's generator takes)."""
    def walk(obj: Any, prefix: str):
        hints = typing.get_type_hints(type(obj))
        for f in fields(obj):
            v = getattr(obj, f.name)
            key = prefix + f.name
            typ = hints.get(f.name)
            if is_dataclass(typ):
                if not isinstance(v, typ):
                    raise ConfigError(f"{key} must be a section of fields, got {v!r:.60}")
                walk(v, key + ".")
                continue
            kind, what = {float: ((int, float), "a number"), int: (int, "a whole number"), str: (str, "text"),
                          bool: (bool, "true or false"), dict: (dict, "a dict")}.get(typ, (None, ""))
            if kind and (not isinstance(v, kind) or (typ is not bool and isinstance(v, bool))):
                raise ConfigError(f"{key} must be {what}, got {v!r:.60}")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if v != v or v in (float("inf"), float("-inf")):
                    raise ConfigError(f"{key} must be a finite number, got {v}")
                if v < 0:
                    raise ConfigError(f"{key} must be >= 0, got {v}")
                if (f.name.startswith("dropout") or f.name == "drop_path") and v >= 1:
                    raise ConfigError(f"{key} is a drop rate and must be < 1, got {v}")

    def value(dotted: str):
        obj = cfg
        for name in dotted.split("."):
            obj = getattr(obj, name, None)
        return obj

    walk(cfg, "")
    for section in (getattr(cfg, "shared", None), getattr(cfg, "optim", None)):
        if section is not None and section.schedule not in ("exp", "cosine"):
            raise ConfigError(f"schedule must be 'exp' or 'cosine', got {section.schedule!r}")
    if cfg.model.style not in ("search", "final"):
        raise ConfigError(f"model.style must be 'search' or 'final', got {cfg.model.style!r}")
    for name in ("epochs", "batch_size", "bptt", "eval_batch_size", "log_every", "derive_samples", "nas_updates",
                 "child_epochs", "model.hidden_size", "model.channels", "controller.hidden_size",
                 "controller.num_layers", "controller.num_aggregate", "shared.lr_T0", "shared.lr_T_mul",
                 "optim.lr_T0", "optim.lr_T_mul"):
        if value(name) is not None and value(name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {value(name)}")
    for name in ("shared.lr", "optim.lr", "controller.lr", "cpus_per_child"):
        if value(name) is not None and not value(name) > 0:
            raise ConfigError(f"{name} must be > 0, got {value(name)}")
    for name, below_one in (("controller.adam_beta1", True), ("controller.baseline_decay", False),
                            ("controller.skip_target", False)):  # Adam needs beta1 < 1
        v = value(name)
        if v is not None and (v >= 1 if below_one else v > 1):
            raise ConfigError(f"{name} must be {'< 1' if below_one else '<= 1'}, got {v}")
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed must be in 0 .. {2**32 - 1}, got {cfg.seed}")
    if value("executor") not in (None, "local", "ray"):
        raise ConfigError(f"executor must be 'local' or 'ray', got {cfg.executor!r}")


def to_dict(cfg: Any) -> dict:
    return asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config from `to_dict` output (nested dataclasses included); unknown keys are errors."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r} in {cls.__name__}")
        typ = hints[key]
        kwargs[key] = from_dict(typ, value) if is_dataclass(typ) else value
    return cls(**kwargs)


__all__ = ["ModelConfig", "OptimConfig", "ControllerConfig", "SearchConfig", "TrainConfig", "PRESETS", "preset",
           "preset_names", "apply_overrides", "validate", "to_dict", "from_dict"]
