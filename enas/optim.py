"""SGD for shared and final weights: the learning-rate schedule and a step that skips non-finite losses.

The step (`guarded_step`) is SGD with the weight decay folded into the gradient, a global-norm clip
and a mask that turns a non-finite step into no step. For a model with stacked weights of which a
step reads a few rows (the recurrent supernet's `w_edges`, enas/nn/rnn_lm.py) and plain SGD on one
process, the same arithmetic runs row-sparse: the gradient holds the read rows only, these rows get
their decay, clip and update, and the decay owed by the other rows is kept by the model's
`LazyRowDecay` ledger and applied when they are next read. The result equals the dense step's (to
rounding), global norm included: an unread row's gradient is wd * w, which the ledger sums from its
cached row norms.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from .config import OptimConfig
from .nn.row_decay import per_row


def make_sgd(model: nn.Module, cfg: OptimConfig, row_sparse: bool = True) -> torch.optim.SGD:
    """torch SGD over model's parameters. Weight decay is folded into the gradient by `guarded_step`,
    so a skipped step changes nothing. With plain SGD (momentum 0) on one process, and unless
    `row_sparse` is False (a step replayed as a CUDA graph), every submodule offering
    `use_row_sparse_gradients(on)` is turned to row-sparse gradients, and the optimiser keeps
    the ledgers it returns (`optimizer.lazy_decay`: parameter -> LazyRowDecay) for `guarded_step`;
    otherwise such modules are turned off (dense). Data-parallel training all-reduces dense gradients."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov and cfg.momentum > 0)
    row_sparse = row_sparse and cfg.momentum == 0 and not (dist.is_available() and dist.is_initialized()
                                                           and dist.get_world_size() > 1)
    optimizer.lazy_decay = {}
    for module in model.modules():
        switch = getattr(module, "use_row_sparse_gradients", None)
        if callable(switch):
            optimizer.lazy_decay.update(switch(row_sparse))
    return optimizer


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
    become zeros, and a plain-SGD step with zero gradient leaves the weights exactly as they were
    (row-sparse parameters: their rows and ledger are written back unchanged).
    Returns the 0-d bool tensor `ok` for the caller to count skipped steps at log time.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        lazy = _lazy_params(optimizer, cfg)
        ledgers = getattr(optimizer, "lazy_decay", {})
        reset = []
        for p in params:
            if p.grad.is_sparse and p not in lazy:  # momentum, another optimiser, lr * wd >= 1: dense
                if p in ledgers:
                    ledgers[p].materialize(p)  # the gradient is that of the true rows
                    reset.append(p)  # the dense step writes every row: the ledger's norms follow
                p.grad = p.grad.to_dense()  # (sums repeated rows)
        if lazy:
            ok = _lazy_step(optimizer, loss, cfg, [p for p in params if p not in lazy], lazy)
        else:
            ok = _dense_step(optimizer, loss, cfg, params)
        for p in reset:
            ledgers[p].reset(p)
    return ok


def _dense_step(optimizer, loss, cfg: OptimConfig, params) -> torch.Tensor:
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


def _lazy_params(optimizer, cfg: OptimConfig) -> dict:
    """parameter -> (ledger, lr) for the row-sparse gradients the lazy step handles: those of
    `make_sgd`'s ledgers under plain SGD (momentum, torch's own weight decay or maximize fall back
    to the dense step, as does lr * wd >= 1, where the decay factor 1 - lr c wd has no log)."""
    ledgers = getattr(optimizer, "lazy_decay", {})
    if not ledgers or not isinstance(optimizer, torch.optim.SGD):
        return {}
    lazy = {}
    for group in optimizer.param_groups:
        if group["momentum"] or group["weight_decay"] or group.get("maximize") or \
                group["lr"] * cfg.weight_decay >= 1:
            continue
        for p in group["params"]:
            if p.grad is not None and p.grad.is_sparse and p in ledgers:
                lazy[p] = (ledgers[p], group["lr"])
    return lazy


class _RowSparseGradient:
    """One row-sparse parameter's share of a step: its gradient rows with the decay folded in.

    Works in place on the gradient's values and on the ledger's buffer of read rows: on the CPU a
    fresh [n, H, 2H] tensor per step costs more than the arithmetic on it."""

    def __init__(self, p: torch.Tensor, ledger, weight_decay: float):
        self.p, self.ledger = p, ledger
        grad = p.grad
        self.rows = rows = grad._indices()[0]  # [n]
        values = grad._values()  # [n, ...], ours to overwrite
        n = rows.shape[0]
        lead = None
        if n and not ledger.distinct_rows(n):
            # A row may repeat (coalesce() would read the row count back to the host): each place
            # gets its row's sum, written once at the row's first place and copied to the others.
            first = (rows.unsqueeze(1) == rows.unsqueeze(0)).to(torch.uint8).argmax(1)  # [n]
            lead = first == torch.arange(n, device=rows.device)
            values = torch.zeros_like(values).index_add_(0, first, values).index_select(0, first)
        self.values = values
        self.stored = ledger.read_rows(p, rows)  # [n, ...]
        self.factors = ledger.factors(rows)  # [n] float64: true row = stored * factor
        # as the dense step: grad + wd * w, with w the true row
        values.addcmul_(self.stored, per_row(self.factors * weight_decay, values))
        row_sq = torch.linalg.vector_norm(values.flatten(1), dim=1).double().square()  # [n]
        if lead is not None:
            row_sq = torch.where(lead, row_sq, 0.0)  # each row once
        used = torch.zeros(p.shape[0], dtype=torch.bool, device=p.device).index_fill_(0, rows, True)
        # ||gradient||^2 over all rows: the read rows', and wd * w of the rows not read
        self.sq_norm = row_sq.sum() + weight_decay ** 2 * ledger.idle_sq_norm(used)

    def step(self, lr: float, coef: torch.Tensor, ok: torch.Tensor, weight_decay: float) -> None:
        """SGD on the true read rows as the dense step computes it, w - lr * (c * g), and the factor
        (1 - lr c wd) that every row owes into the ledger. A skipped step multiplies the stored rows
        by 1 and adds 0: they are written back unchanged."""
        g = self.values
        g.mul_(coef.to(g.dtype))
        torch.where(ok, g, torch.zeros((), dtype=g.dtype, device=g.device), out=g)
        new = self.stored.mul_(per_row(torch.where(ok, self.factors, 1.0), g)).add_(g, alpha=-lr)
        log_factor = torch.where(ok, torch.log1p(-lr * weight_decay * coef), 0.0)
        self.ledger.commit(self.p, self.rows, new, ok, log_factor)
        self.p.grad = None  # used up; torch's step must not apply it again


def _lazy_step(optimizer, loss, cfg: OptimConfig, dense, lazy: dict) -> torch.Tensor:
    wd = cfg.weight_decay
    grads = [p.grad for p in dense]
    if wd and grads:
        torch._foreach_add_(grads, dense, alpha=wd)
    sparse = {p: _RowSparseGradient(p, ledger, wd) for p, (ledger, _) in lazy.items()}
    # the global norm in float64 over all parameters (clip_grad_norm_ forms the same number)
    squares = [torch.linalg.vector_norm(g).double().square() for g in grads] + [s.sq_norm for s in sparse.values()]
    norm = torch.stack(squares).sum().sqrt()
    ok = torch.isfinite(loss.detach()) & torch.isfinite(norm)
    # clip coefficient as torch.nn.utils.clip_grad_norm_: max_norm / (norm + 1e-6), at most 1
    coef = (cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0) if cfg.grad_clip else torch.ones_like(norm)
    for g in grads:
        if cfg.grad_clip:
            g.mul_(coef.to(g.dtype))
        torch.where(ok, g, torch.zeros((), dtype=g.dtype, device=g.device), out=g)
    for p, s in sparse.items():
        s.step(lazy[p][1], coef, ok, wd)
    optimizer.step()
    return ok
