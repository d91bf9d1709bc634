"""SGD for shared and final weights: the learning-rate schedule and a step that skips non-finite losses."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def make_sgd(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    # Weight decay is folded into the gradient by `guarded_step`, so a skipped step changes nothing.
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


def lr_at(cfg: OptimConfig, epoch: int) -> float:
    """The learning rate of a (0-based) epoch.

    "exp": lr * decay^(epochs since lr_decay_start), floored at lr_min (ENAS PTB, per epoch).
    "cosine": SGDR (Loshchilov & Hutter 2017) between lr and lr_min, restarting after lr_T0 epochs,
    then cycles lr_T_mul times longer each (official ENAS CIFAR-10 utils.get_train_ops).
    """
    if cfg.schedule == "cosine":
        t, cycle = epoch, cfg.lr_T0
        while t >= cycle:
            t, cycle = t - cycle, cycle * cfg.lr_T_mul
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * t / cycle))
    decays = max(0, epoch - cfg.lr_decay_start + 1) if cfg.lr_decay != 1.0 else 0
    return max(cfg.lr * cfg.lr_decay ** decays, cfg.lr_min)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def guarded_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, cfg: OptimConfig) -> torch.Tensor:
    """Backward, weight decay, gradient-norm clip and step, with no host synchronisation.

    A NaN or inf loss (or gradient) must never reach the weights; testing it with a Python `if`
    would stall the device every step, so the update itself is masked: gradients of a bad step
    become zeros, and a plain-SGD step with zero gradient leaves the weights exactly as they were.
    Returns the 0-d bool tensor `ok` for the caller to count skipped steps at log time.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        if cfg.weight_decay:
            torch._foreach_add_(grads, params, alpha=cfg.weight_decay)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else \
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        ok = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        zero = torch.zeros((), dtype=grads[0].dtype, device=grads[0].device)
        for g in grads:
            torch.where(ok, g, zero, out=g)
    optimizer.step()
    return ok
