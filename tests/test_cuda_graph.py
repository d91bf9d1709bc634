"""The policy of `CapturedStep` (enas/cuda_graph.py), checked on the CPU with the CUDA calls mocked: one
graph per input shape, each with its own warm-up, a new key recaptures, every call is one real step,
and a capture that fails warns once and leaves the run eager."""
from __future__ import annotations

import warnings

import pytest
import torch

from enas.config import apply_overrides
from enas.cuda_graph import CapturedStep, CaptureFailed
from enas.strategies.enas import Enas


class FakeGraph:
    """Replays fn on the graph's input tensors into its output tensors, as a CUDA graph would."""

    def __init__(self, fn, static_in, static_out):
        self.fn, self.static_in, self.static_out = fn, static_in, static_out

    def replay(self):
        for out, new in zip(self.static_out, self.fn(*self.static_in)):
            out.copy_(new)


class MockedStep(CapturedStep):
    """A CapturedStep that takes CPU tensors for device tensors and logs what it does per call."""

    def __init__(self, fn, fail_capture=False, **kw):
        super().__init__(fn, **kw)
        self.fail_capture, self.log = fail_capture, []

    @staticmethod
    def _on_device(inputs):
        return True

    def _warmup_call(self, inputs):
        self.log.append(("warm-up", inputs[0].shape[0]))
        return self.fn(*inputs)

    def _record(self, static_in, pool):
        self.log.append(("capture", static_in[0].shape[0]))
        if self.fail_capture:
            try:
                static_in[0].view(-1, 5)  # raises inside torch: stands for an operator a capture refuses
            finally:
                if self.fail_capture == "twice":  # ending the failed capture raises again
                    raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
        static_out = (torch.empty_like(static_in[0]),)  # allocated by the capture; the replays compute it
        return FakeGraph(self.fn, static_in, static_out), pool or object(), static_out


def _step(**kw):
    calls = []

    def fn(a, b):
        calls.append(a.shape[0])
        return (a + b,)
    step = MockedStep(fn, warmup=2, **kw)
    return step, calls


def _call(step, rows, key=0.5):
    a, b = torch.randn(rows, 3), torch.randn(rows, 3)
    (out,) = step(a, b, key=key)
    assert torch.equal(out, a + b)  # every call computes its own inputs' step


def test_the_short_last_batch_gets_its_own_graph():
    step, calls = _step()
    shapes = [64] * 4 + [7] + [64] * 3 + [7] * 3 + [64] * 2
    for rows in shapes:
        _call(step, rows)
    assert calls == shapes  # one real step per call: none run twice, none thrown away
    assert step.log == [("warm-up", 64), ("warm-up", 64), ("capture", 64), ("warm-up", 7), ("warm-up", 7),
                        ("capture", 7)]
    # each shape: 2 warm-ups, the capture's step, then replays; the full batches replay after a short one
    assert step.captures == 2 and step.replayed == (1 + 3 + 2) + 1
    pools = [g.pool for g in step.graphs.values()]
    assert len(pools) == 2 and pools[0] is not pools[1]  # each shape's graph has its own memory


def test_a_new_key_recaptures_that_shape_without_a_new_warm_up():
    step, _ = _step()
    for rows, key in [(64, 0.5)] * 4 + [(64, 0.25)] * 2:
        _call(step, rows, key)
    assert step.log == [("warm-up", 64), ("warm-up", 64), ("capture", 64), ("capture", 64)]
    assert step.captures == 2 and step.replayed == 2


@pytest.mark.parametrize("fail", [True, "twice"])
def test_a_failed_capture_warns_once_and_the_calls_go_on_eagerly(fail):
    step, calls = _step(fail_capture=fail)
    with pytest.warns(CaptureFailed, match=r"test_cuda_graph.py:\d+ \(static_in\[0\]\.view\(-1, 5\).*"
                                           r"--set cuda_graphs=false"):
        for rows in [64] * 3:
            _call(step, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        for rows in [64] * 3 + [7] * 3:
            _call(step, rows)
    assert calls == [64] * 6 + [7] * 3 and step.captures == 0 and step.replayed == 0
    assert step.log == [("warm-up", 64), ("warm-up", 64), ("capture", 64)]


def test_a_search_whose_capture_fails_goes_on_eagerly(tiny_search_cfg, tmp_path):
    """The engine's shared step, with a capture forced to fail: one warning, and the search runs on to
    the same weights as a search that never tried to capture."""
    cfg = apply_overrides(tiny_search_cfg, ["shared_steps=8", "epochs=1", "log_every=4"])
    plain = Enas.start(cfg, tmp_path / "plain", progress=False)
    plain.run()
    failing = Enas.start(cfg, tmp_path / "failing", progress=False)
    failing.engine._captured_step = MockedStep(failing.engine._shared_body, fail_capture=True, warmup=2)
    with pytest.warns(CaptureFailed) as caught:
        assert failing.run() is True
    assert len([w for w in caught if w.category is CaptureFailed]) == 1
    a, b = plain.engine.supernet.state_dict(), failing.engine.supernet.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
