"""Tasks: the data on the device, the loss, the metric and the reward of each benchmark (PTB, images)."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def make_task(cfg, device: torch.device, rank: int = 0):
    """The task a search or final-training config names, its data loaded onto `device`; each rank of
    a data-parallel run draws its own batches."""
    if cfg.task == "ptb":
        from .ptb import PTBTask

        controller = getattr(cfg, "controller", None)
        return PTBTask(cfg.data_dir, device, cfg.batch_size, cfg.bptt, cfg.eval_batch_size,
                       reward_c=controller.reward_c if controller else 80.0)
    if cfg.task in ("cifar10", "fashion_mnist"):
        from .image_task import ImageTask

        return ImageTask(cfg.task, cfg.data_dir, device, cfg.batch_size, cfg.eval_batch_size,
                         num_valid=cfg.num_valid, cutout=cfg.cutout, aux_weight=cfg.aux_weight,
                         seed=cfg.seed + 1_000_003 * rank)
    raise ConfigError(f"unknown task {cfg.task!r}; known: ptb, cifar10, fashion_mnist")
