"""Run configuration: typed dataclasses and `--set key=value`.

A search's config is `SearchConfig` (what every strategy has: the space, the task, the model, the
shared-weights optimiser, the child budget) plus its strategy's own section at `cfg.<strategy>`
(`with_section`; the strategy declares the section's dataclass, enas/strategies/). A final training's
is `TrainConfig`. Presets are resolved above this module (enas/presets.py).

Every field is addressable by its dotted name (`seed`, `enas.controller.lr`, `model.hidden_size`); a
key the top level lacks is looked up in the strategy's section, so `controller.lr` is
`enas.controller.lr` in an enas search. Every value given as text is checked against the field's
type, and every config against the ranges its dataclasses declare (`ranges`, `choices`); unknown keys
and bad values raise ConfigError, which the CLI prints as one line.
"""
from __future__ import annotations

import ast
import copy
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, make_dataclass
from typing import Any, ClassVar

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

    ranges: ClassVar[dict] = {"hidden_size": ">= 1", "channels": ">= 1"}
    choices: ClassVar[dict] = {"style": ("search", "final")}


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

    ranges: ClassVar[dict] = {"lr": "> 0", "lr_T0": ">= 1", "lr_T_mul": ">= 1"}
    choices: ClassVar[dict] = {"schedule": ("exp", "cosine")}


@dataclass
class ControllerConfig:
    hidden_size: int = 100
    num_layers: int = 1           # stacked LSTM layers
    lr: float = 3.5e-4
    adam_beta1: float = 0.0
    adam_eps: float = 1e-3        # official ENAS utils.get_train_ops (Adam's own default is 1e-8)
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
    subset_logits: str = "enas"   # a skip bit's logits: "enas" [-x, x] (official macro) | "nas" [0, x] (Zoph & Le)
    anchors: str = "after"        # which controller state stands for a node: after | own_step | before
    indices_first: bool = True    # a node's predecessor decisions before its ops (official micro order)
    # Memorisation regulariser (Adam & Lorraine 2019, arXiv:1904.00438; enas/memory.py): the controller
    # also learns to reconstruct architectures it sampled earlier. Only a search that trains its controller
    # between shared-weight epochs uses it (enas/strategies/enas.py). Epochs are counted from 1.
    memory: bool = False          # on/off
    memory_start_epoch: int = 5   # from the end of this epoch on, store samples after every epoch:
    memory_per_epoch: int = 1000  #   this many per epoch
    memory_size: int = 10000      #   until this many are held; then each epoch overwrites
    memory_replace: int = 100     #   this many random rows with new samples
    memory_loss_start_epoch: int = 10  # from this epoch's controller updates on, every update adds
    memory_weight: float = 1.0    #   this times the negative log-likelihood (teacher forced, mean over rows)
    memory_batch: int = 100       #   of this many rows drawn uniformly from the memory

    ranges: ClassVar[dict] = {"hidden_size": ">= 1", "num_layers": ">= 1", "num_aggregate": ">= 1", "lr": "> 0",
                              "adam_beta1": "< 1",  # Adam needs beta1 < 1
                              "adam_eps": "> 0",
                              "baseline_decay": "<= 1", "skip_target": "<= 1"}


@dataclass
class SearchConfig:
    """What every search has, whatever its strategy; the strategy's own settings are its section
    (`with_section`). Fields a strategy does not use (a child budget in a weight-sharing search) stay
    as they are, so one config serves `enas compare` for every strategy."""

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
    # `enas analyze`: architectures per group (the 1,000 of the blog study "Understanding Neural
    # Architecture Search", 2019) and the validation batches each is scored on
    analyze_samples: int = 1000
    analyze_batches: int = 10
    log_every: int = 50
    num_valid: int = 5000         # images: training images held out for rewards (official: 5000)
    cutout: int = 0               # images: cutout square side (0 = off)
    aux_weight: float = 0.4       # images: weight of the auxiliary head's loss (official micro: 0.4)
    # children trained from scratch (the child pool of full NAS and random search without sharing)
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
    # the recurrent supernet's eager shared step updates only the rows of w_edges its architecture read
    # (enas/nn/row_decay.py); off = the dense update a graphed step makes (to time the graph alone)
    sparse_update: bool = True
    bf16: bool = False            # bf16 autocast of the supernet's forwards (search; the loss stays float32)
    # TF32 matmuls on Ampere and later GPUs (a 10-bit mantissa). Off, PyTorch's own default for matmuls:
    # a GPU search then computes what the CPU computes to float32 rounding, and the recurrent step at
    # the paper's sizes is bound by kernel launches, not by matmul arithmetic (benchmarks/README.md)
    tf32: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    shared: OptimConfig = field(default_factory=OptimConfig)

    ranges: ClassVar[dict] = {"epochs": ">= 1", "batch_size": ">= 1", "bptt": ">= 1", "eval_batch_size": ">= 1",
                              "log_every": ">= 1", "derive_samples": ">= 1", "analyze_samples": ">= 1",
                              "analyze_batches": ">= 1", "child_epochs": ">= 1",
                              "cpus_per_child": "> 0"}
    choices: ClassVar[dict] = {"executor": ("local", "ray")}
    # what the saved state of a run is made of: a resumed run keeps these (enas/restore.py)
    fixed_keys: ClassVar[tuple[str, ...]] = ("space", "space_options", "task", "strategy", "batch_size",
                                             "eval_batch_size", "num_valid", "model")

    @property
    def section(self) -> Any:
        """The strategy's own section (`cfg.<strategy>`), None for a strategy without one."""
        return getattr(self, self.strategy, None) if self.strategy not in SEARCH_FIELDS else None


@dataclass
class SearchPreset(SearchConfig):
    """What a space's search preset declares (enas/spaces/): the common fields, plus the values each
    strategy takes its section from (`Strategy.section_preset`): the controller of the official ENAS
    code on this space, how many controller updates full NAS makes on it, and any other section
    values the space's own paper fixes (`sections`)."""

    controller: ControllerConfig = field(default_factory=ControllerConfig)
    nas_updates: int = 10         # full NAS: controller updates, each over controller.num_aggregate children
    # values of strategy sections this space's preset fixes, by strategy (e.g. {"darts": {"arch_lr": 3e-4}})
    sections: dict = field(default_factory=dict)


SEARCH_FIELDS = frozenset(f.name for f in fields(SearchConfig))


def with_section(strategy: str, section: type | None) -> type:
    """The config class of a strategy: SearchConfig whose `strategy` is `strategy`, plus (unless `section`
    is None) the strategy's own dataclass at the field `strategy`, whose `fixed_keys` join the class's."""
    if strategy in SEARCH_FIELDS:
        raise ValueError(f"a strategy may not be named {strategy!r}, a field of every search config")
    extra = [(strategy, section, field(default_factory=section))] if section is not None else []
    cls = make_dataclass(f"{strategy.title().replace('_', '')}SearchConfig",
                         [("strategy", str, field(default=strategy)), *extra], bases=(SearchConfig,))
    cls.__module__ = __name__
    cls.for_strategy = strategy
    cls.fixed_keys = SearchConfig.fixed_keys + tuple(f"{strategy}.{k}" for k in getattr(section, "fixed_keys", ()))
    return cls


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

    ranges: ClassVar[dict] = {"epochs": ">= 1", "batch_size": ">= 1", "bptt": ">= 1", "eval_batch_size": ">= 1",
                              "log_every": ">= 1"}
    fixed_keys: ClassVar[tuple[str, ...]] = ("task", "batch_size", "eval_batch_size", "num_valid", "model")


# --- dotted access ------------------------------------------------------------------------------

def _fields(obj_or_class: Any) -> dict[str, Any]:
    """{field name: type} of a config dataclass (its ClassVars left out)."""
    hints = typing.get_type_hints(obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class))
    return {f.name: hints[f.name] for f in fields(obj_or_class)}


def _resolve(cfg: Any, dotted: str) -> tuple[Any, str, Any]:
    """(owner object, field name, field type) of a dotted key; dict fields take any sub-key. A key the
    top level lacks is looked up in the strategy's section (`controller.lr` = `enas.controller.lr`)."""
    parts = dotted.split(".")
    section = getattr(cfg, "section", None)
    if section is not None and parts[0] not in _fields(cfg) and parts[0] in _fields(section):
        parts = [cfg.strategy, *parts]
    obj = cfg
    for i, name in enumerate(parts):
        if isinstance(obj, dict):
            if i != len(parts) - 1:
                raise ConfigError(f"unknown config key {dotted!r}")
            return obj, name, Any
        hints = _fields(obj)
        if name not in hints:
            known = ", ".join(hints)
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"unknown config key {dotted!r} (at {where}: {known})")
        if i == len(parts) - 1:
            return obj, name, hints[name]
        obj = getattr(obj, name)
    raise ConfigError(f"unknown config key {dotted!r}")


def knows(cfg: Any, dotted: str) -> bool:
    """Whether `dotted` names a field of cfg, as --set reads it."""
    try:
        _resolve(cfg, dotted)
    except ConfigError:
        return False
    return True


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


_RANGES = {">= 1": lambda v: v >= 1, "> 0": lambda v: v > 0, "< 1": lambda v: v < 1, "<= 1": lambda v: v <= 1}


def validate(cfg: Any) -> None:
    """Type and range checks, for values given with --set and for configs read back from a run
    directory: every value of its field's type, every number finite and >= 0, drop rates < 1, what each
    dataclass declares in `ranges` (counts and sizes >= 1, learning rates > 0, ...) and `choices`, the
    seed in 0 .. 2**32 - 1 (what numpy's generator takes), and a strategy's config naming its strategy."""
    def walk(obj: Any, prefix: str):
        for name, typ in _fields(obj).items():
            v = getattr(obj, name)
            key = prefix + name
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
                if (name.startswith("dropout") or name == "drop_path") and v >= 1:
                    raise ConfigError(f"{key} is a drop rate and must be < 1, got {v}")
        for name, rule in getattr(obj, "ranges", {}).items():
            if not _RANGES[rule](getattr(obj, name)):
                raise ConfigError(f"{prefix}{name} must be {rule}, got {getattr(obj, name)}")
        for name, allowed in getattr(obj, "choices", {}).items():
            if getattr(obj, name) not in allowed:
                raise ConfigError(f"{prefix}{name} must be {' or '.join(map(repr, allowed))}, "
                                  f"got {getattr(obj, name)!r}")

    walk(cfg, "")
    if not 0 <= cfg.seed < 2**32:
        raise ConfigError(f"seed must be in 0 .. {2**32 - 1}, got {cfg.seed}")
    strategy = getattr(type(cfg), "for_strategy", None)
    if strategy is not None and cfg.strategy != strategy:
        raise ConfigError(f"strategy is {strategy!r} in this config; choose a strategy with --strategy")


def to_dict(cfg: Any) -> dict:
    return asdict(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuild a config from `to_dict` output (nested dataclasses included); unknown keys are errors."""
    hints = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown config key {key!r} in {cls.__name__}")
        typ = hints[key]
        kwargs[key] = from_dict(typ, value) if is_dataclass(typ) else value
    return cls(**kwargs)


__all__ = ["ModelConfig", "OptimConfig", "ControllerConfig", "SearchConfig", "SearchPreset", "TrainConfig",
           "with_section", "apply_overrides", "knows", "validate", "to_dict", "from_dict"]
