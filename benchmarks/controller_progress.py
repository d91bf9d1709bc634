"""Does the controller learn its own reward? Per epoch of an ENAS search: the mean reward and metric of
the controller's updates, its sample entropy, and how often an architecture it samples beats a uniform
one (and one of the controller at its initial weights) on the shared weights as they are at the end of
that epoch.

    python benchmarks/controller_progress.py --data-dir ../shared/data/ptb --preset small
    python benchmarks/controller_progress.py --data-dir ../shared/data/ptb --preset small \
        --set enas.controller.adam_eps=1e-3    # the official ENAS epsilon
    python benchmarks/controller_progress.py --data-dir ../shared/data/ptb --preset small \
        --set enas.controller.steps=20         # a fifth of the paper's controller updates per shared step

The search is `enas search` itself, stopped after each epoch; the three groups are drawn and scored as
`enas analyze` does (enas/analysis/groups.py: sampled, not greedy; the same first `--batches`
validation batches for every architecture). A win rate of 0.5 is no better than the other group.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from enas.analysis import groups
from enas.config import apply_overrides
from enas.strategies import preset, start_search


def epoch_rows(run_dir: Path, epoch: int) -> list[dict]:
    """The controller's rewarded samples of one epoch (0-based), from RUN/archs.jsonl."""
    lines = (run_dir / "archs.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["phase"] == "controller" and r["epoch"] == epoch]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="enas_rnn")
    p.add_argument("--task", default="ptb")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--preset", default="small")
    p.add_argument("--samples", type=int, default=100, help="architectures per group at each epoch's end")
    p.add_argument("--batches", type=int, default=2, help="validation batches each architecture is scored on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", help="keep the search here (for `enas analyze RUN`); default: a temporary folder")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    cfg = preset("search", args.task, args.preset, args.space)
    cfg = apply_overrides(cfg, [f"data_dir={args.data_dir}", f"seed={args.seed}", *args.set])
    c = cfg.enas.controller
    print(f"{args.space} on {args.task}, preset {args.preset} {' '.join(args.set)}: {cfg.epochs} epochs of "
          f"{cfg.shared_steps} shared steps and {c.steps} controller updates of {c.num_aggregate} "
          f"(lr {c.lr:g}); groups of {args.samples} scored on {args.batches} validation batches "
          f"({torch.get_num_threads()} threads)")
    print("epoch  reward  metric  entropy  win_vs_uniform  win_vs_initial  uniform_reward  seconds")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir or tmp)
        search = start_search(cfg, run_dir, progress=False)
        untrained = groups.initial_controller(search)
        for epoch in range(cfg.epochs):
            search.run(max_units=cfg.shared_steps + c.steps)
            rows = epoch_rows(run_dir, epoch)
            drawn = groups.draw(search, untrained, args.samples, args.seed + 1000 * epoch)
            metric = groups.score(search, drawn, args.batches, progress=False)
            if metric is None:  # Ctrl-C or SIGTERM
                break
            reward = {g: groups.rewards(search, m) for g, m in metric.items()}
            vs_uniform = groups.compare(reward, "trained", "uniform")["win_rate"]
            vs_initial = groups.compare(reward, "trained", "untrained")["win_rate"]
            print(f"{epoch + 1:5d}  {np.mean([r['reward'] for r in rows]):6.4f}  "
                  f"{np.mean([r['metric'] for r in rows]):6.1f}  {np.mean([r['entropy'] for r in rows]):7.3f}  "
                  f"{vs_uniform:14.3f}  {vs_initial:14.3f}  {np.mean(reward['uniform']):14.4f}  "
                  f"{time.perf_counter() - t0:7.0f}", flush=True)


if __name__ == "__main__":
    main()
