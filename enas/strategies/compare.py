"""`enas compare`: ENAS against full NAS and random search (with and without weight sharing) on one
space and task, under the same search budget, over several seeds.

Every strategy searches for `budget` seconds of wall-clock time on this machine (the same device for
all), then its architecture is derived the way the strategy does it (weight sharing: best of N on the
shared weights; no sharing: the best child), and each derived architecture is trained from scratch
with one and the same final recipe. The table reports the final metric (mean and spread over seeds)
and the search cost of each strategy.

Each run directory is locked while the comparison writes it. A stop (Ctrl-C, SIGTERM) ends the
comparison after the current search, derive or final training has saved; a comparison does not resume.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..arch import Arch
from ..checkpoint import atomic_write
from ..config import apply_overrides, preset
from ..hparams import run_hparams
from ..interrupt import stop_on_interrupt
from ..logger import RunLogger
from ..rundir import locked
from ..train import FinalTraining
from . import check_search, start_search
from .derive import derive

# (label, directory, strategy, weight sharing)
ENTRANTS = (("enas", "enas", "enas", True), ("nas", "nas", "nas", False),
            ("random (shared weights)", "random-shared", "random", True),
            ("random (from scratch)", "random-scratch", "random", False))


def compare(space: str, task: str, data_dir: str, budget: float, seeds: int, logdir: str | Path,
            preset_name: str = "tiny", search_overrides: list[str] = (), train_overrides: list[str] = (),
            progress: bool = True) -> tuple[str, list[dict]] | None:
    """Runs everything under logdir/<strategy>/seed<k>/{search,final}; returns the markdown table and
    the raw figures, also written to logdir/comparison.md and logdir/comparison.json; None when stopped."""
    root = Path(logdir)
    rows = []
    for label, directory, strategy, sharing in ENTRANTS:
        for seed in range(seeds):
            where = root / directory / f"seed{seed}"
            cfg = preset("search", task, preset_name, space, strategy)
            cfg.space, cfg.data_dir, cfg.weight_sharing = space, data_dir, sharing
            cfg = apply_overrides(cfg, [*search_overrides, f"seed={seed}", "epochs=1000000", "nas_updates=1000000"])
            check_search(cfg)
            start = time.monotonic()
            with stop_on_interrupt() as stop, locked(where / "search"):
                search = start_search(cfg, where / "search", progress=False)
                search.run(deadline=start + budget)
                searched = time.monotonic() - start
                if stop:
                    return None
                if not sharing:
                    search.check_success()  # a best child, in arch.json
                arch_json = derive(where / "search", progress=False) if sharing else \
                    json.loads((where / "search" / "arch.json").read_text())
            if arch_json is None:  # derive stopped
                return None
            arch = Arch.from_json(arch_json)
            train_cfg = apply_overrides(preset("train", task, preset_name, space),
                                        [f"data_dir={data_dir}", *train_overrides, f"seed={seed}"])
            with locked(where / "final"):
                result = FinalTraining.start(arch, train_cfg, where / "final", progress=False).run()
            if result is None:
                return None
            m = next(k for k in result if k.startswith("test_"))
            rows.append({"strategy": label, "seed": seed, "arch": str(arch), "search_seconds": searched,
                         "derive_seconds": time.monotonic() - start - searched, "final": result[m], "metric": m})
            with RunLogger(where) as entrant:  # the entrant's row in TensorBoard's HPARAMS tab
                entrant.hparams(run_hparams(cfg, "compare", entrant=label, budget_s=float(budget)),
                                {f"hparams/final_{m}": result[m], "hparams/search_seconds": searched})
            if progress:
                tqdm.write(f"{label:24s} seed {seed}: {m} {result[m]:.4g}  ({searched:.0f} s search)", file=sys.stderr)
    table = _table(rows, budget)
    atomic_write(root / "comparison.md", lambda f: f.write(table.encode("utf-8")))
    with RunLogger(root) as logger:
        logger.write_json("comparison.json", rows)
        for label, *_ in ENTRANTS:
            finals = [r["final"] for r in rows if r["strategy"] == label]
            logger.scalars({f"compare/{label}/final_mean": statistics.fmean(finals)}, 0)
            for r in rows:
                if r["strategy"] == label:
                    logger.scalar(f"compare/{label}/final", r["final"], r["seed"])
    return table, rows


def _table(rows: list[dict], budget: float) -> str:
    metric = rows[0]["metric"]
    lines = [f"| strategy | {metric} (mean ± sd) | per seed | search s | derive + final s |",
             "| --- | --- | --- | --- | --- |"]
    for label, *_ in ENTRANTS:
        rs = [r for r in rows if r["strategy"] == label]
        finals = [r["final"] for r in rs]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        lines.append(f"| {label} | {statistics.fmean(finals):.4g} ± {sd:.2g} | "
                     f"{', '.join(f'{f:.4g}' for f in finals)} | "
                     f"{statistics.fmean(r['search_seconds'] for r in rs):.0f} | "
                     f"{statistics.fmean(r['derive_seconds'] for r in rs):.0f} |")
    return (f"Search budget {budget:g} s of wall-clock time per strategy and seed; every derived "
            f"architecture trained from scratch with the same final recipe.\n\n" + "\n".join(lines) + "\n")
