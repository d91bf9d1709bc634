"""Preset recipes the two ENAS image spaces (enas_macro, enas_micro) share; each space file fills in its
own values (its space options, cells per stage, controller settings) and registers the result.

Official melodyguan/enas scripts/cifar10_{macro,micro}_{search,final}.sh: the official loss adds
l2_reg * sum(w^2), i.e. weight decay 2 * l2_reg; its gradient clip (5.0) is a no-op because of a bug in
utils.get_train_ops, so clipping is off here. SGD momentum 0.9 with Nesterov, and a cosine schedule with
warm restarts every 10, 20, 40, ... epochs, in all four. The CIFAR-10 recipes serve Fashion-MNIST too
(its shapes come from the data), so every function here ignores which image task it is for.
"""
from __future__ import annotations

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig


def cosine(lr_min: float, l2: float) -> OptimConfig:
    return OptimConfig(lr=0.05, schedule="cosine", lr_min=lr_min, lr_T0=10, lr_T_mul=2,  # child_lr_max/min/T_0/T_mul
                       momentum=0.9, nesterov=True, weight_decay=2 * l2, grad_clip=0.0)


def search_tiny(space: str, space_options: dict, cells_per_stage: int, controller: dict) -> SearchPreset:
    """Fashion-MNIST or CIFAR-10 in seconds on two CPU cores. `controller`: the space's own
    ControllerConfig values (skip penalty, op shaping, op biases, anchors)."""
    return SearchPreset(
        space=space, space_options=space_options,
        epochs=2, batch_size=32, eval_batch_size=64, shared_steps=10, num_valid=500, eval_max_batches=2,
        derive_samples=6, analyze_samples=100, analyze_batches=2, log_every=5,
        nas_updates=2, child_max_steps=20,  # full NAS / random from scratch: 8 children of 20 steps
        model=ModelConfig(channels=8, num_layers=cells_per_stage),
        shared=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=1, momentum=0.9, nesterov=True,
                           weight_decay=2e-4, grad_clip=0.0),
        controller=ControllerConfig(hidden_size=32, lr=0.0035, tanh_constant=1.5, steps=3, num_aggregate=4,
                                    reward_c=1.0, **controller,
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def train_tiny(cells_per_stage: int, aux_head: bool) -> TrainConfig:
    """Seconds: 210 steps of 32 images, the official cosine schedule compressed into three 70-step
    epochs (Fashion-MNIST test accuracy about 0.75 on 1,000 test images)."""
    return TrainConfig(
        epochs=3, batch_size=32, eval_batch_size=100, max_steps=70, eval_max_batches=10, log_every=35,
        num_valid=0,
        model=ModelConfig(channels=12, num_layers=cells_per_stage, style="final", aux_head=aux_head),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=3, momentum=0.9, nesterov=True,
                          weight_decay=2e-4, grad_clip=0.0),
    )


def search_small(paper: SearchPreset, space_options: dict, cells_per_stage: int) -> SearchPreset:
    """A search that learns for real on one machine (Fashion-MNIST: minutes on two CPU cores): the
    official search recipe (cosine SGD with warm restarts, Nesterov, controller settings of the
    paper preset, given as `paper`) on 6 macro layers, or micro cells of 3 blocks (one cell per
    stage), of 16 filters (nas_cnn reuses the schedule; its filter counts are its own). Measured on
    Fashion-MNIST (README)."""
    cfg = paper
    cfg.space_options = space_options
    cfg.epochs, cfg.batch_size, cfg.eval_batch_size, cfg.shared_steps = 4, 64, 128, 150
    cfg.eval_max_batches, cfg.log_every, cfg.derive_samples = 4, 25, 50
    cfg.model = ModelConfig(channels=16, num_layers=cells_per_stage, dropout=0.1)
    cfg.shared = OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=4, momentum=0.9, nesterov=True,
                             weight_decay=2e-4, grad_clip=0.0)
    cfg.controller.steps, cfg.controller.num_aggregate = 10, 10
    return cfg


def train_small(channels: int, cells_per_stage: int, aux_head: bool) -> TrainConfig:
    """Four epochs with one cosine cycle (Fashion-MNIST: minutes on two CPU cores); the final-style
    network of the official recipe at 24 (macro) or 16 (micro) filters."""
    return TrainConfig(
        epochs=4, batch_size=128, eval_batch_size=200, num_valid=0, log_every=50,
        model=ModelConfig(channels=channels, num_layers=cells_per_stage, dropout=0.1, aux_head=aux_head,
                          style="final"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.001, lr_T0=4, momentum=0.9, nesterov=True,
                          weight_decay=2e-4, grad_clip=0.0),
    )
