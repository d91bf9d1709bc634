"""Tasks: the data on the device, the loss, the metric and the reward of each benchmark (PTB, images).

The registry below is the one place that knows the tasks by name: each entry says which class holds
the task (imported when first needed: the data modules are heavy) and how a config builds it. What a
task supports is declared on its class, and read there instead of asking its name:
- `data_parallel`: a search may run on several devices (torchrun), each rank drawing its own batches;
- `holds_out_valid`: a search scores architectures on held-out training images (num_valid >= 1,
  `check_search_task`);
- `nas_controller_lr`: the Adam learning rate of the full-NAS controller on this task (Zoph & Le 2017).
"""
from __future__ import annotations

import importlib
from typing import Callable, NamedTuple

import torch

from ..errors import ConfigError


class TaskEntry(NamedTuple):
    module: str                # under enas.tasks
    class_name: str
    build: Callable            # build(cls, name, cfg, device, rank) -> the task


def _build_ptb(cls, name: str, cfg, device: torch.device, rank: int):
    controller = getattr(getattr(cfg, "section", None), "controller", None)  # a search strategy's controller
    return cls(cfg.data_dir, device, cfg.batch_size, cfg.bptt, cfg.eval_batch_size,
               reward_c=controller.reward_c if controller else 80.0)


def _build_images(cls, name: str, cfg, device: torch.device, rank: int):
    return cls(name, cfg.data_dir, device, cfg.batch_size, cfg.eval_batch_size, num_valid=cfg.num_valid,
               cutout=cfg.cutout, aux_weight=cfg.aux_weight, seed=cfg.seed + 1_000_003 * rank)


TASKS: dict[str, TaskEntry] = {
    "ptb": TaskEntry("ptb", "PTBTask", _build_ptb),
    "cifar10": TaskEntry("image_task", "ImageTask", _build_images),
    "fashion_mnist": TaskEntry("image_task", "ImageTask", _build_images),
}


def list_tasks() -> list[str]:
    """The registered task names, in registration order."""
    return list(TASKS)


def _entry(name: str) -> TaskEntry:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def task_class(name: str) -> type:
    """The class of task `name`: what it supports (class attributes) without loading its data."""
    entry = _entry(name)
    return getattr(importlib.import_module(f"{__name__}.{entry.module}"), entry.class_name)


def check_search_task(cfg) -> None:
    """What a search asks of its task, checked before any work from what the task class declares: a
    task that scores on held-out training images needs some."""
    if task_class(cfg.task).holds_out_valid and cfg.num_valid < 1:
        raise ConfigError("a search on images scores architectures on held-out training images: num_valid "
                          "must be >= 1")


def make_task(cfg, device: torch.device, rank: int = 0):
    """The task a search or final-training config names, its data loaded onto `device`; each rank of
    a data-parallel run draws its own batches."""
    entry = _entry(cfg.task)
    return entry.build(task_class(cfg.task), cfg.task, cfg, device, rank)
