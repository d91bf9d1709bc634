"""A step captured once as a CUDA graph and replayed for every architecture.

On a GPU a shared step of the recurrent supernet is a few thousand small kernels (a dozen per node
and time step, forward and backward), so it is bound by launches, not arithmetic. Because the
architecture is a device tensor that the step only indexes with (enas/nn/rnn_lm.py), one recorded
graph computes the step of every architecture: the inputs (arch tokens, batch, recurrent state) are
copied into the graph's own input tensors and the whole step (forward, backward, clipping, SGD update)
is replayed with one launch.

`CapturedStep(fn)` follows the whole-network recipe of the PyTorch CUDA graphs notes
(https://pytorch.org/docs/stable/notes/cuda.html#cuda-graphs): a few eager calls on a side stream
first (lazy initialisation, cuDNN/cuBLAS workspaces, the optimiser's state), then one call is
captured and replayed at once, and later calls only copy their inputs and replay. Every call is a
real step: none is run twice or thrown away. A call whose input shapes differ from the captured
ones (the shorter last batch of a pass over the data) runs eagerly; a call with another `key` (a new
learning rate, which SGD reads as a Python number and the graph therefore holds as a constant)
captures again. Randomness inside the graph (dropout masks) is drawn afresh on every replay: the
default CUDA generator advances its offset per replay.

Off a CUDA device (or with `enabled=False`) a call is just `fn(*inputs)`, so the CPU runs the very
same code path.
"""
from __future__ import annotations

from typing import Callable

import torch

WARMUP_CALLS = 3  # eager calls before capture (the PyTorch notes warm up with 3 iterations)


def _spec(inputs) -> tuple:
    return tuple((t.shape, t.dtype, t.device) for t in inputs)


class CapturedStep:
    """fn(*tensors) -> tuple of tensors, replayed from a CUDA graph after `warmup` eager calls.

    The outputs of a replay are the graph's own tensors: valid until the next call, so a caller that
    keeps one across calls copies it (the recurrent state need not be: it is copied into the graph's
    input before the next replay reads it)."""

    def __init__(self, fn: Callable[..., tuple], enabled: bool = True, warmup: int = WARMUP_CALLS):
        self.fn, self.enabled, self.warmup = fn, enabled, warmup
        self.eager_calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.pool = None  # the memory pool of the first graph, shared by later captures
        self.static_in: list[torch.Tensor] = []
        self.static_out: tuple = ()
        self.captured_for: tuple | None = None  # (input spec, key)

    @property
    def replays(self) -> bool:
        """Whether calls with the captured spec now replay a graph."""
        return self.graph is not None

    def __call__(self, *inputs: torch.Tensor, key=()) -> tuple:
        if not (self.enabled and inputs[0].is_cuda):
            return self.fn(*inputs)
        spec = (_spec(inputs), key)
        if self.graph is not None and spec == self.captured_for:
            for static, t in zip(self.static_in, inputs):
                static.copy_(t)
            self.graph.replay()
            return self.static_out
        if self.eager_calls < self.warmup or (self.graph is not None and spec[0] != self.captured_for[0]):
            return self._eager(inputs)
        return self._capture(inputs, spec)

    def _eager(self, inputs) -> tuple:
        """One eager call on a side stream (before capture, the PyTorch notes' warm-up)."""
        self.eager_calls += 1
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self, inputs, spec) -> tuple:
        """Record fn on copies of `inputs` (the graph's input tensors), then replay it once: this call's step."""
        self.static_in = [t.clone() for t in inputs]
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            self.static_out = self.fn(*self.static_in)
        self.pool = self.pool or graph.pool()
        self.graph, self.captured_for = graph, spec
        graph.replay()
        return self.static_out
