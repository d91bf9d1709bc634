"""Operators per unit of the recurrent search: what a CUDA-graph replay of the step is bounded by.

A replayed graph launches one kernel per operator that computes, so at a few microseconds a kernel the
count of those in a shared step bounds its time from below, whatever the hidden size. This script
counts, with torch.profiler on the CPU, the operators of the `paper` PTB search (the count on a GPU
is about the same): one shared step as the difference between runs of 12 and 4 steps (set-up
cancels), once with the CPU's cell and once with the GPU's (enas/nn/rnn_cell_lean.py), and one
reward evaluation (the batched forward of a controller update's 10 architectures on one reward
batch). Two counts:

- leaf operators: every aten operator that calls no other, views (as_strided) and allocations
  included, which launch no kernel;
- kernels: the operators that compute, each counted once (a leaf that is not a view, an allocation
  or a metadata call, or an operator such as mm whose only children are such calls).

    python benchmarks/op_count.py --data-dir ../shared/data/ptb [--hidden 200]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import units  # noqa: E402

from enas.config import apply_overrides  # noqa: E402
from enas.nn import rnn_cell  # noqa: E402
from enas.strategies import preset  # noqa: E402
from enas.strategies.enas import Enas  # noqa: E402

# operators that launch no kernel: views, allocations, metadata
NO_KERNEL = {"as_strided", "view", "_reshape_alias", "reshape", "_unsafe_view", "alias", "select", "slice",
             "unsqueeze", "squeeze", "t", "transpose", "permute", "expand", "unbind", "split", "narrow",
             "flatten", "detach", "lift_fresh", "resolve_conj", "resolve_neg", "empty", "empty_strided",
             "empty_like", "new_empty", "to", "result_type", "is_nonzero"}


def _is_kernel(event) -> bool:
    name = event.name.removeprefix("aten::")
    return (event.name.startswith("aten::") and name not in NO_KERNEL
            and not any(_is_kernel(c) for c in event.cpu_children))


def count(fn) -> tuple[int, int]:
    """(leaf aten operators, kernels) that fn runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    leaves = sum(1 for e in events if not any(c.name.startswith("aten::") for c in e.cpu_children))
    return leaves, sum(1 for e in events if _is_kernel(e))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--hidden", type=int, default=200)
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = apply_overrides(preset("search", "ptb", "paper"),
                          [f"data_dir={args.data_dir}", "device=cpu", f"model.hidden_size={args.hidden}",
                           "log_every=1000000", "shared_steps=1000000"])
    with tempfile.TemporaryDirectory() as tmp:
        search = Enas.start(cfg, Path(tmp) / "run", progress=False)
        steps = {}
        for cell, devices in (("the CPU's cell", ("cuda",)), ("the GPU's cell", ("cuda", "cpu"))):
            rnn_cell.LEAN_DEVICES = devices
            units(search, "shared", 2)  # warm-up: lazily built buffers and workspaces
            few, many = count(lambda: units(search, "shared", 4)), count(lambda: units(search, "shared", 12))
            steps[cell] = [(m - f) / 8 for f, m in zip(few, many)]
        n = search.cfg.enas.controller.num_aggregate
        tokens = search.policy.sample(n)
        search.engine.score(tokens)  # warm-up
        reward = count(lambda: search.engine.score(tokens))
    T, N = cfg.bptt, search.space.num_nodes
    print(f"paper PTB search, hidden {args.hidden}, {N} nodes, BPTT {T}, torch {torch.__version__}, CPU")
    for cell, step in steps.items():
        print(f"shared step, {cell}: {step[1]:,.0f} kernels ({step[1] / (T * N):.1f} per node and time step), "
              f"{step[0]:,.0f} leaf operators ({step[0] / (T * N):.1f})")
    cpu, gpu = steps.values()
    print(f"the GPU's cell / the CPU's: kernels x{gpu[1] / cpu[1]:.2f}, leaf operators x{gpu[0] / cpu[0]:.2f}")
    print(f"reward evaluation ({n} architectures, one batch): {reward[1]:,} kernels, {reward[0]:,} leaf operators")


if __name__ == "__main__":
    main()
