"""Run configuration: typed dataclasses, the `paper` and `tiny` presets, and `--set key=value`.

Every field is addressable by its dotted name (`seed`, `controller.lr`, `model.hidden_size`) and every
value given as text is checked against the field's type; unknown keys and bad values raise
ConfigError, which the CLI prints as one line.
"""
from __future__ import annotations

import ast
import copy
import typing
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
    op_bias: bool = False         # micro: the official op-logit biases (learned, and fixed in the normal cell)
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

def _ptb_search_paper() -> SearchConfig:
    """ENAS PTB search. Values stated in the paper (Pham et al. 2018, sec. 3.1) are taken from it;
    where it is silent, from the official search script (melodyguan/enas scripts/ptb_search.sh,
    "OFF" below) or, for the shared hidden size and the hidden-norm clip, from carpedm20/ENAS-pytorch
    (config.py, models/shared_rnn.py; "PT"). OFF itself trains in another regime (SGD lr 0.25 on a
    loss summed over time, clip 10, batch 20, hidden 720); set those with --set to reproduce it."""
    return SearchConfig(
        epochs=150,                          # paper: 150 epochs
        batch_size=64, bptt=35,              # paper: minibatches of 64, BPTT truncated at 35
        eval_batch_size=64,                  # PT: a 64 x 35 validation batch per reward
        shared_steps=400,                    # paper: ω trained for about 400 steps per epoch
        derive_samples=100,                  # PT derive_num_sample
        model=ModelConfig(
            hidden_size=1000,                # PT shared_hid = shared_embed = 1000
            dropout_e=0.25, dropout_x=0.75,  # OFF keep probabilities e 0.75, x 0.25,
            dropout_h=0.25, dropout_o=0.75,  #     h 0.75, o 0.25 (one mask per batch)
            max_hidden_norm=25.0,            # PT RNN.forward max_norm
            init_range=0.04),                # OFF _build_params: U(-0.04, 0.04) for H > 400
        shared=OptimConfig(lr=20.0, grad_clip=0.25,         # paper: SGD lr 20, gradient norm clip 0.25
                           lr_decay=0.96, lr_decay_start=15,  # paper: x0.96 per epoch from epoch 15
                           weight_decay=1e-7),               # paper: l2 1e-7
        controller=ControllerConfig(
            hidden_size=100,                 # paper / OFF main.py: one LSTM layer of 100 units
            lr=3.5e-4, adam_beta1=0.0,       # paper: Adam lr 0.00035; OFF utils.get_train_ops: beta1 = 0
            temperature=5.0, tanh_constant=2.5,  # paper
            entropy_weight=1e-4,             # paper: sample entropy added to the reward, weight 1e-4
            baseline_decay=0.99,             # OFF main.py controller_bl_dec
            num_aggregate=10,                # OFF --controller_num_aggregate=10
            steps=200,                       # paper: 2000 sampled architectures = 200 updates of 10
            reward_c=80.0,                   # OFF / PT: reward = 80 / valid_ppl
            index_distance_penalty=1 / 6,    # OFF ptb_enas_controller.py (and enas_lm): -(i - j)^2 / 6
            scale_index_input=True,          #   and the chosen node's state / (0.1 + (i - j)) as input
            anchors="before",                #   where a node's anchor is its first step (`all_h`)
            init_range=0.1),                 # paper / OFF: θ ~ U(-0.1, 0.1)
    )


def _ptb_search_tiny() -> SearchConfig:
    """Seconds on two CPU cores: the same loop at toy sizes."""
    return SearchConfig(
        space_options={"num_nodes": 6},
        epochs=2, batch_size=16, bptt=20, eval_batch_size=16, eval_max_batches=20, shared_steps=15,
        derive_samples=8, log_every=5,
        nas_updates=3, child_max_steps=30,  # full NAS / random from scratch: 6 children of 30 steps
        # Over so few steps lr 5 learns faster than the paper's 20 at hidden 48 (shared loss after
        # 150 steps: 6.80 against 7.06); the hidden-norm clip is 25 * sqrt(48 / 1000) ~ 5.
        model=ModelConfig(hidden_size=48, dropout_e=0.1, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25,
                          max_hidden_norm=5.0, init_range=0.1),
        shared=OptimConfig(lr=5.0, grad_clip=0.25),
        controller=ControllerConfig(hidden_size=32, adam_beta1=0.0, steps=4, num_aggregate=2, anchors="before",
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def _ptb_search_small() -> SearchConfig:
    """A search that learns for real on one machine: about 10 minutes on two CPU cores.
    The paper's loop and optimiser (lr 20, clip 0.25, batch 64, BPTT 35, 10 architectures per
    controller update) at hidden 200 with 8-node cells; dropout halved for a run this short."""
    return SearchConfig(
        space_options={"num_nodes": 8},
        epochs=6, batch_size=64, bptt=35, eval_batch_size=64, eval_max_batches=10,
        shared_steps=100, derive_samples=100, log_every=20,
        model=ModelConfig(hidden_size=200, dropout_e=0.1, dropout_x=0.5, dropout_h=0.25, dropout_o=0.5,
                          max_hidden_norm=11.0,    # 25 * sqrt(200 / 1000): PT's clip scaled to the size
                          init_range=0.1),         # OFF _build_params: 0.1 for hidden <= 300
        shared=OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=1e-7),
        controller=ControllerConfig(hidden_size=100, lr=3.5e-4, adam_beta1=0.0, temperature=5.0,
                                    tanh_constant=2.5, entropy_weight=1e-4, baseline_decay=0.99,
                                    num_aggregate=10, steps=20, index_distance_penalty=1 / 6,
                                    scale_index_input=True, anchors="before", init_range=0.1),
    )


def _ptb_train_small() -> TrainConfig:
    """Final training on one machine: 2,400 steps of 64 x 35 tokens (about 5.8 passes over the
    training text, 40 minutes on two CPU cores) at hidden 200; the paper's lr 20 and clip 0.25,
    then x0.7 per 200-step epoch from the sixth; light dropout, since so few passes underfit."""
    return TrainConfig(
        epochs=12, max_steps=200, batch_size=64, bptt=35, eval_batch_size=64, log_every=50,
        model=ModelConfig(hidden_size=200, dropout_e=0.05, dropout_x=0.25, dropout_h=0.1, dropout_o=0.25,
                          max_hidden_norm=11.0, init_range=0.1),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, lr_decay=0.7, lr_decay_start=6, weight_decay=5e-7),
    )


def _ptb_train_paper() -> TrainConfig:
    """Final training of a PTB cell, official melodyguan/enas scripts/ptb_final.sh.
    OFF applies lr 20 to a loss summed over the 35 steps; we keep the per-token mean (as enas_lm and
    PT do), which with clip 0.25 takes steps of the same length once gradients are clipped."""
    return TrainConfig(
        epochs=2000,                         # OFF --num_epochs=2000
        batch_size=64, bptt=35,              # OFF --batch_size=64 --child_bptt_steps=35
        eval_batch_size=10,
        model=ModelConfig(
            hidden_size=748,                 # OFF --child_lstm_hidden_size=748
            dropout_e=0.21, dropout_x=0.75,  # OFF keep e 0.79, x 0.25,
            dropout_h=0.25, dropout_o=0.76,  #     h 0.75, o 0.24
            init_range=0.04),                # OFF: U(-0.04, 0.04) for H > 400
        optim=OptimConfig(lr=20.0, grad_clip=0.25,               # OFF --child_lr=20 --child_grad_bound=0.25
                          lr_decay=0.9991, lr_decay_start=14,      # OFF --child_lr_dec_rate/_start
                          lr_min=0.001, weight_decay=5e-7),        # OFF --child_lr_dec_min, --child_l2_reg
    )


def _ptb_train_tiny() -> TrainConfig:
    """Seconds: 100 steps of the paper's lr 20 and clip 0.25 at hidden 48 (the enas_ptb cell: valid
    perplexity ~890 after 90 steps, against 10,000 for uniform guessing)."""
    return TrainConfig(
        epochs=1, batch_size=16, bptt=20, max_steps=100, eval_max_batches=20, log_every=10,
        model=ModelConfig(hidden_size=48, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25, max_hidden_norm=5.0,
                          init_range=0.1),
        optim=OptimConfig(lr=20.0, grad_clip=0.25),
    )


# --- image presets (official melodyguan/enas scripts/cifar10_{macro,micro}_{search,final}.sh) ---------
# The official loss adds l2_reg * sum(w^2), i.e. weight decay 2 * l2_reg; its gradient clip (5.0) is
# a no-op because of a bug in utils.get_train_ops, so clipping is off here. SGD momentum 0.9 with
# Nesterov, and a cosine schedule with warm restarts every 10, 20, 40, ... epochs, in all four.

def _cosine(lr_min: float, l2: float) -> OptimConfig:
    return OptimConfig(lr=0.05, schedule="cosine", lr_min=lr_min, lr_T0=10, lr_T_mul=2,  # child_lr_max/min/T_0/T_mul
                       momentum=0.9, nesterov=True, weight_decay=2 * l2, grad_clip=0.0)


def _macro_search_paper() -> SearchConfig:
    return SearchConfig(
        space="enas_macro", space_options={"num_layers": 12}, task="cifar10",  # child_num_layers=12
        epochs=310, batch_size=128, eval_batch_size=128, shared_steps=0,      # a pass over 45k images
        num_valid=5000, log_every=50, derive_samples=100,
        model=ModelConfig(channels=36, dropout=0.1),            # out_filters 36, keep_prob 0.9
        shared=_cosine(lr_min=0.0005, l2=0.00025),
        controller=ControllerConfig(hidden_size=64, lr=0.001, adam_beta1=0.0,  # main.py: lstm_size=64
                                    temperature=0.0, tanh_constant=1.5, entropy_weight=1e-4,
                                    baseline_decay=0.99, num_aggregate=20, steps=50, reward_c=1.0,
                                    skip_target=0.4, skip_weight=0.8, init_range=0.1),
    )


def _micro_search_paper() -> SearchConfig:
    return SearchConfig(
        space="enas_micro", space_options={"num_blocks": 5}, task="cifar10",   # child_num_cells=5
        epochs=150, batch_size=160, eval_batch_size=160, shared_steps=0,
        num_valid=5000, log_every=50, derive_samples=100,
        model=ModelConfig(channels=20, num_layers=2, dropout=0.1, aux_head=True),  # 6 layers = 3 x 2
        shared=_cosine(lr_min=0.0005, l2=1e-4),
        controller=ControllerConfig(hidden_size=64, lr=0.0035, adam_beta1=0.0,
                                    temperature=0.0, tanh_constant=1.10, op_tanh_reduce=2.5, op_bias=True,
                                    entropy_weight=1e-4, baseline_decay=0.99, num_aggregate=10, steps=30,
                                    reward_c=1.0, init_range=0.1,
                                    anchors="own_step"),  # micro_controller.py: one step per block's anchor
    )


def _macro_train_paper() -> TrainConfig:
    return TrainConfig(task="cifar10", epochs=310, batch_size=100, eval_batch_size=100, num_valid=0,
                       model=ModelConfig(channels=96, dropout=0.5, style="final"),  # 24 layers: the arch's
                       optim=_cosine(lr_min=0.001, l2=2e-4))


def _micro_train_paper() -> TrainConfig:
    return TrainConfig(task="cifar10", epochs=630, batch_size=144, eval_batch_size=100, num_valid=0,
                       cutout=16,  # paper: "ENAS + micro search space + CutOut" (the script sets none)
                       model=ModelConfig(channels=36, num_layers=5, dropout=0.2, drop_path=0.4,  # keep 0.8, 0.6
                                         aux_head=True, style="final"),
                       optim=_cosine(lr_min=0.0001, l2=2e-4))


def _image_search_tiny(space: str) -> SearchConfig:
    """Fashion-MNIST or CIFAR-10 in seconds on two CPU cores."""
    return SearchConfig(
        space=space, space_options={"num_layers": 4} if space == "enas_macro" else {"num_blocks": 2},
        epochs=2, batch_size=32, eval_batch_size=64, shared_steps=10, num_valid=500, eval_max_batches=2,
        derive_samples=6, log_every=5,
        nas_updates=2, child_max_steps=20,  # full NAS / random from scratch: 8 children of 20 steps
        model=ModelConfig(channels=8, num_layers=0 if space == "enas_macro" else 1),
        shared=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=1, momentum=0.9, nesterov=True,
                           weight_decay=2e-4, grad_clip=0.0),
        controller=ControllerConfig(hidden_size=32, lr=0.0035, tanh_constant=1.5, steps=3, num_aggregate=4,
                                    reward_c=1.0, skip_weight=0.8 if space == "enas_macro" else 0.0,
                                    op_tanh_reduce=1.0 if space == "enas_macro" else 2.5,
                                    op_bias=space == "enas_micro",
                                    anchors="after" if space == "enas_macro" else "own_step",
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def _image_train_tiny(space: str) -> TrainConfig:
    """Seconds: 210 steps of 32 images, the official cosine schedule compressed into three 70-step
    epochs (Fashion-MNIST test accuracy about 0.75 on 1,000 test images)."""
    return TrainConfig(
        epochs=3, batch_size=32, eval_batch_size=100, max_steps=70, eval_max_batches=10, log_every=35,
        num_valid=0,
        model=ModelConfig(channels=12, num_layers=0 if space == "enas_macro" else 1, style="final",
                          aux_head=space == "enas_micro"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=3, momentum=0.9, nesterov=True,
                          weight_decay=2e-4, grad_clip=0.0),
    )


def _image_search_small(space: str) -> SearchConfig:
    """A search that learns for real on one machine (Fashion-MNIST: minutes on two CPU cores): the
    official search recipe (cosine SGD with warm restarts, Nesterov, controller settings of the
    paper preset) on 6 macro layers, or micro cells of 3 blocks (one cell per stage), of 16 filters.
    Measured on Fashion-MNIST with enas_macro only (README); the micro variant is untried."""
    cfg = _macro_search_paper() if space == "enas_macro" else _micro_search_paper()
    cfg.space_options = {"num_layers": 6} if space == "enas_macro" else {"num_blocks": 3}
    cfg.epochs, cfg.batch_size, cfg.eval_batch_size, cfg.shared_steps = 4, 64, 128, 150
    cfg.eval_max_batches, cfg.log_every, cfg.derive_samples = 4, 25, 50
    cfg.model = ModelConfig(channels=16, num_layers=0 if space == "enas_macro" else 1, dropout=0.1)
    cfg.shared = OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=4, momentum=0.9, nesterov=True,
                             weight_decay=2e-4, grad_clip=0.0)
    cfg.controller.steps, cfg.controller.num_aggregate = 10, 10
    return cfg


def _image_train_small(space: str) -> TrainConfig:
    """Four epochs with one cosine cycle (Fashion-MNIST: minutes on two CPU cores); the final-style
    network of the official recipe at 24 (macro) or 16 (micro) filters."""
    micro = space == "enas_micro"
    return TrainConfig(
        epochs=4, batch_size=128, eval_batch_size=200, num_valid=0, log_every=50,
        model=ModelConfig(channels=16 if micro else 24, num_layers=1 if micro else 0, dropout=0.1,
                          aux_head=micro, style="final"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=4, momentum=0.9, nesterov=True,
                          weight_decay=2e-4, grad_clip=0.0),
    )


PRESETS = {
    ("search", "ptb", "enas_rnn", "paper"): _ptb_search_paper,
    ("search", "ptb", "enas_rnn", "tiny"): _ptb_search_tiny,
    ("search", "ptb", "enas_rnn", "small"): _ptb_search_small,
    ("train", "ptb", "enas_rnn", "small"): _ptb_train_small,
    ("train", "ptb", "enas_rnn", "paper"): _ptb_train_paper,
    ("train", "ptb", "enas_rnn", "tiny"): _ptb_train_tiny,
}
IMAGE_TASKS = ("cifar10", "fashion_mnist")
for _task in IMAGE_TASKS:  # the CIFAR-10 recipes serve Fashion-MNIST too (its shapes come from the data)
    PRESETS.update({
        ("search", _task, "enas_macro", "paper"): _macro_search_paper,
        ("search", _task, "enas_micro", "paper"): _micro_search_paper,
        ("train", _task, "enas_macro", "paper"): _macro_train_paper,
        ("train", _task, "enas_micro", "paper"): _micro_train_paper,
        ("search", _task, "enas_macro", "tiny"): lambda: _image_search_tiny("enas_macro"),
        ("search", _task, "enas_micro", "tiny"): lambda: _image_search_tiny("enas_micro"),
        ("train", _task, "enas_macro", "tiny"): lambda: _image_train_tiny("enas_macro"),
        ("train", _task, "enas_micro", "tiny"): lambda: _image_train_tiny("enas_micro"),
        ("search", _task, "enas_macro", "small"): lambda: _image_search_small("enas_macro"),
        ("search", _task, "enas_micro", "small"): lambda: _image_search_small("enas_micro"),
        ("train", _task, "enas_macro", "small"): lambda: _image_train_small("enas_macro"),
        ("train", _task, "enas_micro", "small"): lambda: _image_train_small("enas_micro"),
    })


def _nas_controller(c: ControllerConfig, task: str) -> None:
    """The controller of full NAS (Zoph & Le 2017, sec. 4.1 and 4.2): a two-layer LSTM of 35 units per
    layer, trained with Adam at lr 6e-4 (5e-4 on Penn Treebank), weights ~ U(-0.08, 0.08). The paper
    names no Adam betas, hence Adam's own beta1 = 0.9 (ENAS's 0 is its official code's). What the paper
    leaves open (logit shaping, entropy bonus, baseline decay, the space's controller options) stays
    as the search preset has it."""
    c.hidden_size, c.num_layers, c.init_range, c.adam_beta1 = 35, 2, 0.08, 0.9
    c.lr = 5e-4 if task == "ptb" else 6e-4


def preset(kind: str, task: str, name: str, space: str = "enas_rnn", strategy: str = "enas"):
    """The preset config of `kind` ("search" or "train") for `space` on `task`; a search preset for
    `strategy` "nas" gets the controller of full NAS (`_nas_controller`)."""
    try:
        cfg = PRESETS[(kind, task, space, name)]()
    except KeyError:
        if not any(t == task for _, t, _, _ in PRESETS):
            raise ConfigError(f"unknown task {task!r}; known: ptb, {', '.join(IMAGE_TASKS)}") from None
        known = sorted({p for k, t, s, p in PRESETS if (k, t, s) == (kind, task, space)})
        if not known:
            spaces = sorted({s for k, t, s, _ in PRESETS if (k, t) == (kind, task)})
            raise ConfigError(f"no presets for {space} on {task}; spaces with presets: {', '.join(spaces)}") from None
        raise ConfigError(f"unknown preset {name!r} for {space} on {task}; known: {', '.join(known)}") from None
    cfg.task = task
    if kind == "search":
        cfg.strategy = strategy
        if strategy == "nas":
            _nas_controller(cfg.controller, task)
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
    if value("strategy") is not None and cfg.task != "ptb" and cfg.num_valid < 1:
        raise ConfigError("a search on images scores architectures on held-out training images: num_valid "
                          "must be >= 1")


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


__all__ = ["ModelConfig", "OptimConfig", "ControllerConfig", "SearchConfig", "TrainConfig", "preset",
           "apply_overrides", "validate", "to_dict", "from_dict"]
