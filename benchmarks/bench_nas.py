"""Full NAS without weight sharing: children trained per hour with 1, 2 and 4 local worker processes.

Every child is a random architecture of a tiny `enas_rnn` (or `enas_macro`) network trained from
scratch for a fixed number of SGD steps on synthetic data, through the executors of enas/executors.py
(a pool of spawned worker processes, each given cores // workers threads). Measured in one run, the
worker counts interleaved over rounds (median per count), pools started and warmed up before timing:

    children/hour with k workers, speed-up over 1 worker, and the scaling efficiency
    throughput(k) / (k x throughput(1))

plus the same children trained one at a time in this process, for reference. Usage:
    python benchmarks/bench_nas.py [--quick] [--space enas_rnn|enas_macro] [--workers 1 2 4]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import enas
from enas.executors import LocalPoolExecutor, make_executor

# Tiny children: big enough that a child is real work (about a second on one core), small enough
# that the benchmark takes a minute.
RNN = dict(options=dict(num_nodes=8), vocab_size=1000, hidden_size=64, batch=16, bptt=20)
MACRO = dict(options=dict(num_layers=6), channels=16, batch=16, image=32)


def train_tiny_child(payload: dict) -> dict:
    """Build a random child of payload["space"] and run payload["steps"] SGD steps on random data."""
    start = time.perf_counter()
    seed, steps = payload["seed"], payload["steps"]
    torch.manual_seed(seed)
    if payload["space"] == "enas_rnn":
        space = enas.get_space("enas_rnn", **RNN["options"])
        arch = space.sample(seed=seed)
        model = enas.build_child(space, arch, vocab_size=RNN["vocab_size"], hidden_size=RNN["hidden_size"])
        data = torch.randint(RNN["vocab_size"], (RNN["bptt"] + 1, RNN["batch"]))  # [T+1, B]
        x, y = data[:-1], data[1:]

        def loss_fn():
            logits, _ = model(x)  # [T, B, V]
            return F.cross_entropy(logits.flatten(0, 1), y.flatten())
    else:
        space = enas.get_space("enas_macro", **MACRO["options"])
        arch = space.sample(seed=seed)
        model = enas.build_child(space, arch, channels=MACRO["channels"], num_classes=10)
        images = torch.randn(MACRO["batch"], 3, MACRO["image"], MACRO["image"])  # [B, 3, H, W]
        labels = torch.randint(10, (MACRO["batch"],))

        def loss_fn():
            return F.cross_entropy(model(images), labels)

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        losses.append(loss.detach())
    return {"metrics": [float(losses[-1])], "seconds": time.perf_counter() - start, "arch": str(arch),
            "threads": torch.get_num_threads()}


def measure(ex, space: str, children: int, steps: int, first_seed: int) -> dict:
    """Train `children` children through `ex` (already warm); wall time and the per-child times."""
    start = time.perf_counter()
    for i in range(children):
        payload = {"space": space, "seed": first_seed + i, "steps": steps}
        ex.submit({"id": i, "attempt": 0, "payload": payload})
    outs = list(ex.results())
    wall = time.perf_counter() - start
    errors = [o["error"] for o in outs if o["error"]]
    if errors:
        raise SystemExit(f"a child failed: {errors[0]}")
    return {"wall": wall, "per_hour": children / wall * 3600,
            "child_s": statistics.mean(o["result"]["seconds"] for o in outs),
            "threads": outs[0]["result"]["threads"], "workers": len({o["worker"] for o in outs})}


def warm(ex, space: str, n: int) -> None:
    """Start the workers and run one tiny child per worker: imports, allocator, first-call costs."""
    for i in range(n):
        ex.submit({"id": i, "attempt": 0, "payload": {"space": space, "seed": 10_000 + i, "steps": 1}})
    list(ex.results())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="8 children of 10 steps per worker count, 1 round")
    p.add_argument("--space", default="enas_rnn", choices=["enas_rnn", "enas_macro"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--children", type=int, default=None, help="per measurement (default 16; 8 quick)")
    p.add_argument("--steps", type=int, default=None, help="SGD steps per child (default 30; 10 quick)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 quick)")
    args = p.parse_args()
    children = args.children or (8 if args.quick else 16)
    steps = args.steps or (10 if args.quick else 30)
    rounds = args.rounds or (1 if args.quick else 3)
    cores = os.cpu_count()

    print(f"{args.space} children, {steps} SGD steps each on synthetic data, {children} children per "
          f"measurement, {rounds} round(s); os.cpu_count() = {cores}, torch {torch.__version__}", flush=True)
    runs: dict = {k: [] for k in ["in process", *args.workers]}
    for r in range(rounds):
        for k in runs:
            if k == "in process":  # the driver's own threads, one child at a time
                ex = make_executor("local", workers=1, fn=train_tiny_child)
            else:
                ex = LocalPoolExecutor(train_tiny_child, workers=k)
            with ex:
                warm(ex, args.space, 1 if k == "in process" else k)
                runs[k].append(measure(ex, args.space, children, steps, first_seed=1000 * r))

    def med(k, key):
        return statistics.median(m[key] for m in runs[k])

    base = med(args.workers[0], "per_hour") if args.workers[0] == 1 else None
    print()
    print("| workers | threads / worker | children / hour | s / child (in the worker) | speed-up | "
          "scaling efficiency |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in runs:
        thr = med(k, "per_hour")
        if k == "in process" or base is None:
            speed = eff = "-"
        else:
            speed, eff = f"{thr / base:.2f}x", f"{thr / (k * base):.0%}"
        print(f"| {k} | {runs[k][0]['threads']} | {thr:,.0f} | {med(k, 'child_s'):.2f} | {speed} | {eff} |")
    print()
    over = [k for k in args.workers if k > cores]
    print(f"This machine has {cores} cores: at most {cores} children train at once, so the efficiency with "
          f"k > {cores} workers is bounded by {cores}/k" + (f" ({', '.join(str(k) for k in over)} workers "
                                                           f"cannot scale here)." if over else "."))


if __name__ == "__main__":
    main()
