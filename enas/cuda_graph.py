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
real step: none is run twice or thrown away.

One graph per input shape: the shorter last batch of a pass over the data gets its own warm-up and
graph, so the full batches after it still replay theirs. A call with another `key` (a new learning
rate, which SGD reads as a Python number and the graph therefore holds as a constant) captures its
shape again. Each shape's graph has its own memory pool: the graphs are replayed in any order, so
none may reuse another's memory. Randomness inside a graph (dropout masks) is drawn afresh on every
replay: the default CUDA generator advances its offset per replay.

A capture that raises (an operator that some torch build cannot capture) does not stop the run: a
warning names where it failed, and every later call runs eagerly.

Off a CUDA device (or with `enabled=False`) a call is just `fn(*inputs)`, so the CPU runs the very
same code path.
"""
from __future__ import annotations

import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

WARMUP_CALLS = 3  # eager calls before capture (the PyTorch notes warm up with 3 iterations)


def _shapes(inputs) -> tuple:
    return tuple((t.shape, t.dtype, t.device) for t in inputs)


@dataclass
class _Graph:
    """The graph of one input shape: its warm-up calls so far, and once captured, its input and output
    tensors and the key it was captured with."""
    warm: int = 0
    graph: Any = None
    pool: Any = None
    static_in: tuple = ()
    static_out: tuple = ()
    key: Any = None


class CaptureFailed(UserWarning):
    """A CUDA-graph capture raised: the run goes on eagerly."""


class CapturedStep:
    """fn(*tensors) -> tuple of tensors, replayed from a CUDA graph (one per input shape) after `warmup`
    eager calls of that shape.

    The outputs of a replay are the graph's own tensors: valid until the next call, so a caller that
    keeps one across calls copies it (the recurrent state need not be: it is copied into the graph's
    input before the next replay reads it). `captures` and `replayed` count what happened, so that a
    run which fell back to eager shows it."""

    def __init__(self, fn: Callable[..., tuple], enabled: bool = True, warmup: int = WARMUP_CALLS):
        self.fn, self.enabled, self.warmup = fn, enabled, warmup
        self.graphs: dict[tuple, _Graph] = {}
        self.captures = self.replayed = 0
        self.failed: str | None = None  # why capture was given up, once it was

    @property
    def replays(self) -> bool:
        """Whether some input shape now replays a graph."""
        return any(g.graph is not None for g in self.graphs.values())

    def __call__(self, *inputs: torch.Tensor, key=()) -> tuple:
        if not (self.enabled and self.failed is None and self._on_device(inputs)):
            return self.fn(*inputs)
        g = self.graphs.setdefault(_shapes(inputs), _Graph())
        if g.graph is not None and g.key == key:
            return self._replay(g, inputs)
        if g.warm < self.warmup:
            g.warm += 1
            return self._warmup_call(inputs)
        try:
            g.graph, g.static_in, g.static_out = None, (), ()  # a recapture frees the old graph first
            g.static_in = tuple(t.clone() for t in inputs)
            g.graph, g.pool, g.static_out = self._record(g.static_in, g.pool)
        except Exception as err:  # noqa: BLE001 - any failure to capture means: run eagerly
            self._give_up(err)
            return self.fn(*inputs)
        g.key = key
        self.captures += 1
        g.graph.replay()  # this call's step
        return g.static_out

    def _replay(self, g: _Graph, inputs) -> tuple:
        for static, t in zip(g.static_in, inputs):
            static.copy_(t)
        g.graph.replay()
        self.replayed += 1
        return g.static_out

    # --- the CUDA calls (a test replaces these to check the policy above on the CPU) ----------
    @staticmethod
    def _on_device(inputs) -> bool:
        return inputs[0].is_cuda

    def _warmup_call(self, inputs) -> tuple:
        """One eager call on a side stream (before capture, the PyTorch notes' warm-up)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _record(self, static_in: tuple, pool) -> tuple:
        """Record fn on the graph's input tensors: (graph, its memory pool, its outputs)."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            static_out = self.fn(*static_in)
        return graph, pool or graph.pool(), static_out

    def _give_up(self, err: Exception) -> None:
        """Warn once, naming the line of our code that failed to capture, and run eagerly from now on."""
        self.graphs.clear()
        while err.__context__ is not None:  # the first error (ending a failed capture can raise again)
            err = err.__context__
        first_line = (str(err).strip().splitlines() or [""])[0]
        self.failed = f"{_where(err)}: {type(err).__name__}: {first_line}"
        warnings.warn(f"CUDA-graph capture failed at {self.failed}; running this step eagerly from now on "
                      f"(--set cuda_graphs=false skips the capture)", CaptureFailed, stacklevel=3)


def _where(err: Exception) -> str:
    """The innermost frame of the traceback outside torch itself: `file:line (code)`, the operation
    that could not be captured."""
    frames = traceback.extract_tb(err.__traceback__)
    torch_dir = str(Path(torch.__file__).parent)
    ours = [f for f in frames if not f.filename.startswith(torch_dir)] or frames
    f = ours[-1]
    return f"{Path(f.filename).name}:{f.lineno} ({f.line})"
