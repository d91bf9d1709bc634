"""The search loop reads nothing back from the device inside its steps (log windows aside), so that on a
GPU the steps queue up without stalls and the recurrent shared step can be replayed as one CUDA graph.

On the CPU a host read cannot stall, so these tests make every Tensor method that reads values to the
host (item, tolist, bool, int, float, cpu, numpy) raise while the steps between two log points run.
The tests marked `gpu` check the same on a CUDA device with torch's sync debug mode, and that the
captured step replays (enas/cuda_graph.py)."""
from __future__ import annotations

import contextlib
import sys

import pytest
import torch

import enas
from conftest import SHARED_DATA
from search_checks import assert_losses_seen, assert_same_parameters
from enas.config import apply_overrides
from enas.cuda_graph import CapturedStep
from enas.nn import rnn_cell
from enas.spaces import get_space_class
from enas.strategies import preset
from enas.strategies.enas import Enas
from enas.strategies.random import Random

HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "cpu", "numpy")


@contextlib.contextmanager
def refusing_host_reads():
    saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def refuse(name):
        real = saved[name]

        def method(self, *args, **kwargs):
            # torch's (non-capturable) Adam keeps its step counter on the CPU, also for CUDA parameters,
            # and reads it there: not a read from the device
            if "torch/optim/" in sys._getframe(1).f_code.co_filename.replace("\\", "/"):
                return real(self, *args, **kwargs)
            raise AssertionError(f"host read inside a step: Tensor.{name}")
        return method

    try:
        for name in HOST_READS:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def units(search, n: int) -> None:
    """n units of the search loop, as `Enas.run` advances them (without its progress bar, stop checks and
    checkpoint)."""
    e = search.engine
    for _ in range(n):
        if e.phase == "shared":
            e.train_step(e.next_arch(search.policy.sample))
        else:
            search.policy.update()
        e.step += 1


def test_the_guard_catches_a_host_read():
    with refusing_host_reads(), pytest.raises(AssertionError, match="Tensor.item"):
        torch.ones(()).item()
    assert torch.ones(()).item() == 1.0  # restored


@pytest.mark.parametrize("strategy", [Enas, Random])
def test_ptb_steps_read_nothing_back(strategy, tiny_search_cfg, tmp_path):
    cfg = apply_overrides(tiny_search_cfg, ["log_every=50", "shared_steps=6", "controller.steps=4"])
    search = strategy.start(cfg, tmp_path / "run", progress=False)
    search.run(max_units=1)
    with refusing_host_reads():
        units(search, 5)  # shared steps 2..6 (the window of 6 was drawn by step 1)
    assert search.engine.phase == "shared" and search.engine.step == 6
    if strategy is Enas:
        search.run(max_units=1)  # the phase switch
        with refusing_host_reads():
            units(search, 2)  # controller updates 2..3 (the 4th logs)
        assert search.engine.phase == "controller" and search.engine.step == 3


def test_ptb_step_with_weight_decay_reads_nothing_back(tiny_search_cfg, tmp_path):
    """The row-sparse update with its lazy decay (enas/optim.py) included."""
    cfg = apply_overrides(tiny_search_cfg, ["log_every=50", "shared_steps=6", "shared.weight_decay=1e-4"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    assert search.engine.supernet.row_sparse
    search.run(max_units=1)
    with refusing_host_reads():
        units(search, 5)


@pytest.mark.parametrize("space", [s for s in enas.list_spaces() if "fashion_mnist" in get_space_class(s).tasks])
def test_image_shared_steps_read_nothing_back(space, tmp_path):
    """A CNN supernet decides in Python which ops run: the window's architectures are read to the host
    once, when it is drawn, and not per step."""
    cfg = preset("search", "fashion_mnist", "tiny", space)
    cfg = apply_overrides(cfg, [f"data_dir={SHARED_DATA / 'fashion-mnist'}", "log_every=50", "shared_steps=4",
                                "batch_size=8", "num_valid=64", "eval_batch_size=16"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    search.run(max_units=1)
    with refusing_host_reads():
        units(search, 3)
    assert search.engine.phase == "shared" and search.engine.step == 4


@pytest.mark.parametrize("lean_devices", [("cuda",), ("cuda", "cpu")], ids=["cpu cell", "lean cell"])
def test_a_resumed_search_trains_on_the_rest_of_the_drawn_window(lean_devices, tiny_search_cfg, tmp_path,
                                                                  monkeypatch):
    """The architectures drawn for a window but not yet trained on are in the checkpoint; the resumed run
    ends with the same bits, with either recurrent cell (the lean one is a GPU's)."""
    monkeypatch.setattr(rnn_cell, "LEAN_DEVICES", lean_devices)
    cfg = apply_overrides(tiny_search_cfg, ["log_every=50", "epochs=1"])
    whole = Enas.start(cfg, tmp_path / "whole", progress=False)
    whole.run()
    parts = Enas.start(cfg, tmp_path / "parts", progress=False)
    parts.run(max_units=2)  # mid window
    assert len(parts.state_dict()["arch_window"]) == cfg.shared_steps - 2
    Enas.resume(tmp_path / "parts", progress=False).run()
    a, b = (torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True) for run in ("whole", "parts"))
    for key in a["supernet"]:
        assert torch.equal(a["supernet"][key], b["supernet"][key]), key


def test_captured_step_off_a_gpu_is_the_plain_call():
    calls = []
    step = CapturedStep(lambda a, b: (calls.append(1), a + b)[1:])
    x = torch.ones(3)
    for _ in range(5):
        (out,) = step(x, x, key=0.5)
        assert torch.equal(out, 2 * x)
    assert len(calls) == 5 and not step.replays


def test_the_graphed_vs_eager_checks_fail_on_planted_faults():
    """The checks the GPU test below makes: each one fails on a fault planted here, on the CPU."""
    space = enas.get_space("enas_rnn", num_nodes=4)
    a, b = (enas.build_supernet(space, vocab_size=10, hidden_size=4) for _ in range(2))
    b.load_state_dict(a.state_dict())
    b.w_edges_decay.sq_norm.add_(1.0)  # buffers may differ: the ledger does, dense against row-sparse
    assert_same_parameters(a, b, tol=1e-4)
    with torch.no_grad():
        b.w_edges[0, 0, 0] += 1e-2  # a parameter that moved
    with pytest.raises(AssertionError, match="w_edges"):
        assert_same_parameters(a, b, tol=1e-4)
    assert_losses_seen([6.5, 6.4], below=9.3)
    for losses in ([], [6.5, float("nan")], [6.5, float("inf")], [9.5]):
        with pytest.raises(AssertionError):
            assert_losses_seen(losses, below=9.3)


# --- on a GPU ------------------------------------------------------------------------------------

def _cuda_search(cfg_overrides, tmp_path, name="run"):
    from conftest import SHARED_DATA as data
    cfg = preset("search", "ptb", "tiny")
    cfg = apply_overrides(cfg, [f"data_dir={data / 'ptb'}", "device=cuda", "log_every=50", *cfg_overrides])
    return Enas.start(cfg, tmp_path / name, progress=False)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
def test_gpu_shared_step_replays_one_graph_without_syncs(tmp_path):
    search = _cuda_search(["shared_steps=40", "controller.steps=12"], tmp_path)
    units(search, 8)  # the warm-up calls, then the capture
    assert search.engine._captured_step.replays
    torch.cuda.set_sync_debug_mode("error")
    try:
        units(search, 30)  # replays only (no log point before step 50)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    search.run(max_units=6)  # to the phase switch, then updates: the reward graph's warm-up and capture
    assert search.engine.phase == "controller" and search.engine._captured_reward.replays
    torch.cuda.set_sync_debug_mode("error")
    try:
        units(search, 1)  # an update logs only every log_every // 5 = 10
    finally:
        torch.cuda.set_sync_debug_mode(0)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("bf16", [False, True])
def test_gpu_captured_search_matches_the_eager_one(bf16, tmp_path):
    """Without dropout the replayed graph runs the eager step's kernels: the same weights to float32
    rounding (bf16: the same to bf16 rounding, and a finite loss)."""
    no_dropout = ["model.dropout_e=0", "model.dropout_x=0", "model.dropout_h=0", "model.dropout_o=0",
                  "model.dropout_i=0", "shared_steps=20", "controller.steps=4", "epochs=1", "log_every=5",
                  f"bf16={str(bf16).lower()}"]
    runs = {}
    for graphs in (True, False):  # the eager run makes the graphed run's dense update
        search = _cuda_search([*no_dropout, f"cuda_graphs={str(graphs).lower()}", "sparse_update=false"],
                              tmp_path, f"g{graphs}")
        search.run()
        assert search.engine._captured_step.replays == graphs
        runs[graphs] = search
    assert runs[True].engine._captured_step.replayed >= 10
    assert_same_parameters(runs[True].engine.supernet, runs[False].engine.supernet, tol=2e-2 if bf16 else 1e-4)
    assert_losses_seen([loss for _, loss in runs[True].engine.shared_losses], below=9.3)


@pytest.mark.gpu
@needs_cuda
def test_gpu_image_shared_steps_do_not_synchronise(tmp_path):
    """A CNN supernet on the GPU: the window's architectures are on the host, so its steps queue up."""
    cfg = preset("search", "fashion_mnist", "tiny", "enas_macro")
    cfg = apply_overrides(cfg, [f"data_dir={SHARED_DATA / 'fashion-mnist'}", "device=cuda", "log_every=50",
                                "shared_steps=10"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    units(search, 2)
    torch.cuda.set_sync_debug_mode("error")
    try:
        units(search, 6)
    finally:
        torch.cuda.set_sync_debug_mode(0)
