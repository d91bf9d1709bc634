"""Lazy weight decay for stacked weights of which a step reads a few rows.

A stacked weight [E, ...] (the recurrent supernet's edge weights, enas/nn/rnn_lm.py) is read a few
rows at a time. `LazyRowDecay.gather` gives those rows with a row-sparse gradient, and the ledger
keeps the weight decay owed by the rows a step did not read, so that plain SGD (enas/optim.py) only
writes the rows it read and the arithmetic still equals the dense step's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.autograd.function import once_differentiable


def _row_sq_norms(x: torch.Tensor) -> torch.Tensor:
    """||x[r]||^2 for every row r of x [n, ...] (at least 2-d), as float64 [n]."""
    return torch.linalg.vector_norm(x.flatten(1), dim=1, dtype=torch.float64).square()


def per_row(factor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """factor [n] shaped to broadcast over the rows of `like` [n, ...], in like's dtype."""
    return factor.to(like.dtype).view(-1, *(1,) * (like.dim() - 1))


class _GatherRows(torch.autograd.Function):
    """out [n, ...] = weight[rows] (times factor[n] per row, when given), with a row-sparse gradient.

    The backward returns the gradient of `out` as a sparse COO tensor of weight's shape holding the n
    gathered rows only (a row gathered twice appears twice; whoever reads it sums them). With a
    factor it is deliberately the gradient with respect to the scaled (true) rows, not the stored
    ones: that is what the lazy SGD step (enas/optim.py) applies to the true rows.
    """

    @staticmethod
    def forward(ctx, weight, rows, factor):
        ctx.save_for_backward(rows)
        ctx.shape = weight.shape
        out = weight.index_select(0, rows)
        return out if factor is None else out.mul_(per_row(factor, out))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensors
        # no validation of the indices: it would read them back to the host
        sparse = torch.sparse_coo_tensor(rows.unsqueeze(0), grad, ctx.shape, check_invariants=False)
        return sparse, None, None


class LazyRowDecay(nn.Module):
    """The weight decay owed by the rows of a stacked weight [E, ...] that recent steps did not read.

    SGD with the decay folded into the gradient (enas/optim.py `guarded_step`) turns a row w that got
    no gradient at step s into w - lr_s * c_s * wd * w (c_s the step's clip coefficient), i.e.
    multiplies it by (1 - lr_s c_s wd). Rather than touching all E rows every step, the ledger keeps
    the sum of the logs of these factors (`log_scale`, 0-d) and, per row, its value when the row was
    last written (`mark` [E]):

        true row r  =  stored row r * exp(log_scale - mark[r])

    so a row idle for k steps carries prod_s (1 - lr_s c_s wd) when it is next read (logs: no
    underflow however long the run). The rows a step reads are written back as true values with
    mark = the new log_scale. `sq_norm` [E] is ||stored row r||^2, so that the idle rows' share of the
    global gradient norm (their gradient is wd * true row) costs E numbers instead of a pass over the
    weight. The buffers live in the owner's state_dict: a checkpoint holds the stored rows with their
    decay pending, and a resumed run repeats the arithmetic of one never interrupted.

    The stored weight must only be written by the optimiser, `load_state_dict`, `materialize` or
    `reset_parameters`; after writing it otherwise, call `reset(weight)`.
    """

    def __init__(self, num_rows: int):
        super().__init__()
        self.register_buffer("log_scale", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mark", torch.zeros(num_rows, dtype=torch.float64))
        self.register_buffer("sq_norm", torch.zeros(num_rows, dtype=torch.float64))
        # Host-side facts, so that no step has to ask the device:
        self.pending = False  # some row may be behind (set by a decaying step or a load)
        self._gathers, self._distinct = 0, None  # gathers with grad since the last step; n if distinct
        self._workspace = None  # [n, ...] reused by the step for the read rows (no fresh pages per step)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.pending = True

    @torch.no_grad()
    def reset(self, weight: torch.Tensor) -> None:
        """Every row of `weight` is current (after it was written whole)."""
        self.log_scale.zero_()
        self.mark.zero_()
        self.sq_norm.copy_(_row_sq_norms(weight))
        self.pending, self._gathers = False, 0

    def fresh_state(self, weight: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
        """The state of a ledger whose rows are all current, for a state_dict saved without one."""
        zeros = torch.zeros(weight.shape[0], dtype=torch.float64)
        return {prefix + "log_scale": torch.zeros((), dtype=torch.float64), prefix + "mark": zeros,
                prefix + "sq_norm": _row_sq_norms(weight.detach()).cpu()}

    @staticmethod
    def owes_nothing(state_dict: dict, prefix: str = "") -> bool:
        """Whether the ledger saved in `state_dict` (under `prefix`) owes no decay to any row (then the
        stored rows are the true ones)."""
        return not (state_dict[prefix + "log_scale"].any() or state_dict[prefix + "mark"].any())

    def factors(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """exp(log_scale - mark) of `rows` [n] (all rows when None): the decay each still owes, float64."""
        mark = self.mark if rows is None else self.mark.index_select(0, rows)
        return torch.exp(self.log_scale - mark)

    def gather(self, weight: torch.Tensor, rows: torch.Tensor, distinct: bool = False) -> torch.Tensor:
        """The true values of weight[rows] [n, ...], with a row-sparse gradient (`_GatherRows`).
        `distinct`: the caller knows that no row repeats (it spares the step summing repeats)."""
        if torch.is_grad_enabled() and weight.requires_grad:
            self._gathers += 1
            self._distinct = rows.shape[0] if distinct else None
        return _GatherRows.apply(weight, rows, self.factors(rows) if self.pending else None)

    def distinct_rows(self, nnz: int) -> bool:
        """Whether a gradient of `nnz` rows holds each row once: it came from one gather of distinct
        rows through one backward (a second gather or backward would add places)."""
        return self._gathers == 1 and self._distinct == nnz

    @torch.no_grad()
    def read_rows(self, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The stored weight[rows] [n, ...], in a buffer the next call reuses."""
        n, ws = rows.shape[0], self._workspace
        if ws is None or ws.shape[0] < n or ws.shape[1:] != weight.shape[1:] or ws.dtype != weight.dtype \
                or ws.device != weight.device:
            ws = self._workspace = weight.new_empty(n, *weight.shape[1:])
        return torch.index_select(weight, 0, rows, out=ws[:n])

    def idle_sq_norm(self, used: torch.Tensor) -> torch.Tensor:
        """sum of ||true row r||^2 over the rows r not `used` ([E] bool), float64 0-d."""
        return torch.where(used, 0.0, self.sq_norm * self.factors().square()).sum()

    @torch.no_grad()
    def commit(self, weight: torch.Tensor, rows: torch.Tensor, new: torch.Tensor, ok: torch.Tensor,
               log_factor: torch.Tensor) -> None:
        """Record a step: the read rows [n] now hold the true values `new` [n, ...], and every row
        owes the step's factor exp(log_factor) (0-d float64). Where not `ok` (0-d bool), `new` must be
        the stored rows and log_factor 0: then nothing changes, to the bit. A repeated row must come
        with the same new value at each of its places."""
        after = self.log_scale + log_factor
        weight.index_copy_(0, rows, new)
        self.mark.index_copy_(0, rows, torch.where(ok, after, self.mark.index_select(0, rows)))
        self.sq_norm.index_copy_(0, rows, torch.where(ok, _row_sq_norms(new), self.sq_norm.index_select(0, rows)))
        self.log_scale.copy_(after)
        self.pending, self._gathers = True, 0

    @torch.no_grad()
    def materialize(self, weight: torch.Tensor) -> None:
        """Write every row's true value into `weight` (in place); the ledger is then empty. A row with
        nothing pending is multiplied by exactly 1, so calling this on a current weight changes no bit."""
        if not self.pending:
            return
        factors = self.factors()
        weight.mul_(per_row(factors, weight))
        self.sq_norm.mul_(factors.square())
        self.mark.copy_(self.log_scale.expand_as(self.mark))
        self.pending = False
