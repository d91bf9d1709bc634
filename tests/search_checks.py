"""Checks that compare two searches, shared by the GPU tests and by the CPU tests that plant a fault in
them (a check that cannot fail would pass a broken GPU path)."""
from __future__ import annotations

import math

import torch


def assert_same_parameters(a: torch.nn.Module, b: torch.nn.Module, tol: float) -> None:
    """Every parameter of a equals b's to `tol` (absolute and relative). Buffers are left out: the
    row-decay ledger of a dense and of a row-sparse update differ by design (enas/nn/row_decay.py)."""
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for name, value in pa.items():
        assert torch.allclose(value, pb[name], atol=tol, rtol=tol), (name, (value - pb[name]).abs().max().item())


def assert_losses_seen(losses: list[float], below: float) -> None:
    """At least one logged loss, and every one finite and under `below`."""
    assert losses, "no loss was logged: the run's log_every is longer than the run"
    assert all(math.isfinite(loss) and loss < below for loss in losses), losses
