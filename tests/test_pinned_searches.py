"""Tiny searches of every strategy with fixed seeds on the CPU, pinned: what archs.jsonl records (every
architecture exactly, every reward, metric and entropy to float tolerance) and every floating-point
tensor of the final checkpoint (weights, optimiser state, baselines). A change to the search machinery
that changes what a search computes changes these; one that only moves code does not.

The pins live in tests/data/pinned_searches.json. After a change that is meant to change results,
write them again with ENAS_WRITE_PINS=1 and say why in the commit.

Floating-point figures are pinned for the CPU that wrote them (vendor and torch's kernel capability):
another CPU's BLAS sums in another order, and the DARTS and PNAS searches amplify that past any useful
tolerance (5% in a tiny DARTS-RNN search's metrics on AMD against Intel). On another CPU only what is
exact is compared: every architecture, in order, and the derived result.
"""
import json
import math
import os
import re
from pathlib import Path

import pytest
import torch

from enas.cli import main

from conftest import SHARED_DATA

PINS = Path(__file__).parent / "data" / "pinned_searches.json"
WRITE = os.environ.get("ENAS_WRITE_PINS") == "1"


def _cpu() -> str:
    vendor = next((line.split(":")[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("vendor_id")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    return f"{vendor} {torch.backends.cpu.get_cpu_capability()}"

PTB = ["--space", "enas_rnn", "--task", "ptb", "--preset", "tiny", "--set", "space_options.num_nodes=4",
       "--set", "eval_max_batches=2"]
SHARED = ["--set", "shared_steps=6", "--set", "log_every=2", "--set", "derive_samples=4"]
CHILDREN = ["--set", "controller.num_aggregate=2", "--set", "child_max_steps=3", "--set", "child_epochs=2"]
IMAGES = ["--space", "enas_macro", "--task", "fashion_mnist", "--preset", "tiny", "--set", "shared_steps=4",
          "--set", "controller.steps=2", "--set", "derive_samples=3", "--set", "space_options.num_layers=3"]

# name -> (data set, search arguments, derive after the search)
CASES = {
    "enas": ("ptb", ["--strategy", "enas", *PTB, *SHARED, "--set", "controller.steps=3",
                     "--set", "controller.memory=true"], True),
    "random_shared": ("ptb", ["--strategy", "random", *PTB, *SHARED], True),
    "nas": ("ptb", ["--strategy", "nas", *PTB, *CHILDREN, "--set", "nas.updates=2"], False),
    "random_scratch": ("ptb", ["--strategy", "random_scratch", *PTB, *CHILDREN[2:], "--set",
                               "random_scratch.children=4", "--set", "random_scratch.batch=2"], False),
    "enas_macro": ("fashion-mnist", ["--strategy", "enas", *IMAGES], True),
    "darts_rnn": ("ptb", ["--strategy", "darts", "--space", "darts_rnn", "--task", "ptb", "--preset", "tiny",
                          "--set", "space_options.num_nodes=3", "--set", "eval_max_batches=2", *SHARED], True),
    "darts_cnn": ("fashion-mnist", ["--strategy", "darts", "--space", "darts_cnn", "--task", "fashion_mnist",
                                    "--preset", "tiny", "--set", "darts.order=2", "--set", "shared_steps=3",
                                    "--set", "model.channels=4", "--set", "batch_size=8", "--set", "num_valid=64",
                                    "--set", "eval_batch_size=8", "--set", "eval_max_batches=1"], True),
    "pnas": ("fashion-mnist", ["--strategy", "pnas", "--space", "pnas", "--task", "fashion_mnist", "--preset", "tiny",
                               "--set", "child_max_steps=3", "--set", "eval_max_batches=1",
                               "--set", "pnas.first_level=4", "--set", "pnas.beam=2"], False),
}
# searches without weight sharing or a controller hold no tensors of their own worth pinning
NO_TENSORS = {"random_scratch", "pnas"}


def _records(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "archs.jsonl").read_text().splitlines()]
    return {"exact": [[r.get(k) for k in ("phase", "step", "epoch", "child", "arch", "error")] for r in rows],
            "numbers": [[r.get(k) for k in ("reward", "metric", "entropy", "predicted")] for r in rows],
            "result": json.loads((run / "arch.json").read_text())["arch"]}


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _tensor_prints(run: Path) -> list[list[float]]:
    """Per floating-point tensor of the checkpoint: [numel, sum, sum of squares, a fixed projection], in
    no particular order (the checkpoint's layout is not what is pinned)."""
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    out = []
    for t in _tensors(state):
        x = t.detach().double().flatten()
        probe = torch.rand(x.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5
        out.append([x.numel(), x.sum().item(), (x * x).sum().item(), (x * probe).sum().item()])
    return sorted(out)


def _close(a, b) -> bool:
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _same_tensors(pinned: list, got: list) -> bool:
    """Every pinned tensor matched by one of the same size and close figures (matched greedily)."""
    left = list(got)
    for p in pinned:
        match = next((g for g in left if g[0] == p[0] and all(_close(x, y) for x, y in zip(p[1:], g[1:]))), None)
        if match is None:
            return False
        left.remove(match)
    return not left


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tiny_search_computes_what_it_computed(case, tmp_path, capsys):
    data, args, derive = CASES[case]
    data_dir = SHARED_DATA / data
    run = tmp_path / "run"
    assert main(["search", *args, "--data-dir", str(data_dir), "--logdir", str(run), "--device", "cpu",
                 "--quiet"]) == 0, capsys.readouterr().err
    if derive:
        assert main(["derive", str(run), "--device", "cpu", "--quiet"]) == 0, capsys.readouterr().err
    got = {"records": _records(run), "tensors": [] if case in NO_TENSORS else _tensor_prints(run), "cpu": _cpu()}
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if WRITE:
        pins[case] = got
        text = json.dumps(pins, indent=1, sort_keys=True)
        PINS.write_text(re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m[1].split()) + "]", text) + "\n")
        return
    assert case in pins, f"no pins for {case}: write them with ENAS_WRITE_PINS=1"
    want = pins[case]
    assert got["records"]["exact"] == want["records"]["exact"]
    assert got["records"]["result"] == want["records"]["result"]
    if want.get("cpu") != got["cpu"]:
        return  # the figures were pinned on another CPU (module docstring)
    for g, w in zip(got["records"]["numbers"], want["records"]["numbers"]):
        assert all(_close(x, y) for x, y in zip(g, w)), (g, w)
    assert len(got["tensors"]) == len(want["tensors"])
    assert _same_tensors(want["tensors"], got["tensors"]), "the final checkpoint's tensors changed"
