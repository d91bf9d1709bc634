"""Tasks: the data on the device, the loss, the metric and the reward of each benchmark (PTB, images)."""
from __future__ import annotations

import torch

from ..errors import ConfigError


def make_task(cfg, device: torch.device):
    """The task a search or final-training config names, its data loaded onto `device`."""
    if cfg.task == "ptb":
        from .ptb import PTBTask

        controller = getattr(cfg, "controller", None)
        return PTBTask(cfg.data_dir, device, cfg.batch_size, cfg.bptt, cfg.eval_batch_size,
                       reward_c=controller.reward_c if controller else 80.0)
    raise ConfigError(f"unknown task {cfg.task!r}; known: ptb")
