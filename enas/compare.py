"""`enas compare`: the registered strategies (ENAS, full NAS, random search with and without weight
sharing, ...) on one space and task, under the same search budget, over several seeds.

The entrants are the strategies that fit the space and task (`Strategy.unfit`), in the registry's
order, or those named. Every one searches for `budget` seconds of wall-clock time on this machine (the
same device for all), then its architecture is the one its runs yield (`Strategy.result`: weight
sharing derives the best of N on the shared weights; without sharing, the best child), and each is
trained from scratch with one and the same final recipe. The table reports the final metric (mean
and spread over seeds) and the search cost of each strategy.

Each run directory is locked while the comparison writes it. A stop (Ctrl-C, SIGTERM) ends the
comparison after the current search, derive or final training has saved; a comparison does not resume.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .arch import Arch
from .checkpoint import atomic_write
from .config import apply_overrides, knows
from .errors import ConfigError
from .hparams import run_hparams
from .interrupt import stop_on_interrupt
from .logger import RunLogger
from .presets import preset
from .registry import SPACES
from .rundir import locked
from .strategies import Strategy, get_strategy, list_strategies
from .train import FinalTraining

# what every entrant's search is told, so that only the budget ends it
UNBOUNDED = 1_000_000


def entrants(space: str, task: str, names: list[str] | None = None) -> list[type[Strategy]]:
    """The strategies `enas compare` runs: those named (each must fit the space and task), or every
    registered one that fits."""
    space_cls = SPACES.get(space)
    if names is None:
        return [s for s in map(get_strategy, list_strategies()) if s.unfit(space_cls, task) is None]
    chosen = [get_strategy(n) for n in dict.fromkeys(names)]
    for s in chosen:
        reason = s.unfit(space_cls, task)
        if reason is not None:
            raise ConfigError(f"--strategies: {s.name} cannot search {space} on {task}: {reason}")
    return chosen


def entrant_configs(space: str, task: str, data_dir: str, preset_name: str, search_overrides: list[str] = (),
                    names: list[str] | None = None) -> list[tuple[type[Strategy], object]]:
    """Every entrant with its search config (seed 0, no end but the budget), checked before anything
    runs. A `--set` applies to the entrants whose config has its key (`controller.steps` to those with
    a controller); one that no entrant has is an error."""
    chosen = entrants(space, task, names)
    bases = {}
    for strategy in chosen:
        bases[strategy] = preset("search", task, preset_name, space, strategy.name)
        bases[strategy].data_dir = data_dir
    for pair in search_overrides:
        key = pair.split("=", 1)[0].strip()
        if "=" not in pair:
            apply_overrides(bases[chosen[0]], [pair])  # its own error: not key=value
        if not any(knows(cfg, key) for cfg in bases.values()):
            raise ConfigError(f"--set {pair}: none of the strategies compared "
                              f"({', '.join(s.name for s in chosen)}) has {key}")
    out = []
    for strategy, cfg in bases.items():
        cfg = apply_overrides(cfg, [p for p in search_overrides if knows(cfg, p.split("=", 1)[0].strip())])
        cfg = strategy.unbounded(cfg, UNBOUNDED)
        strategy.check(cfg)
        out.append((strategy, cfg))
    return out


def compare(space: str, task: str, data_dir: str, budget: float, seeds: int, logdir: str | Path,
            preset_name: str = "tiny", search_overrides: list[str] = (), train_overrides: list[str] = (),
            progress: bool = True, strategies: list[str] | None = None) -> tuple[str, list[dict]] | None:
    """Runs everything under logdir/<strategy>/seed<k>/{search,final}; returns the markdown table and
    the raw figures, also written to logdir/comparison.md and logdir/comparison.json; None when stopped.
    `strategies`: the names to compare (default: every registered strategy that fits)."""
    root = Path(logdir)
    rows = []
    configs = entrant_configs(space, task, data_dir, preset_name, search_overrides, strategies)
    with tqdm(total=len(configs) * seeds, unit=" entrant", desc="compare", dynamic_ncols=True,
              disable=not progress) as bar:
        for strategy, base in configs:
            for seed in range(seeds):
                bar.set_postfix_str(f"{strategy.label}, seed {seed}")
                train_cfg = apply_overrides(preset("train", task, preset_name, space),
                                            [f"data_dir={data_dir}", *train_overrides, f"seed={seed}"])
                row = _entrant(strategy, apply_overrides(base, [f"seed={seed}"]), train_cfg, budget,
                               root / strategy.name / f"seed{seed}")
                if row is None:  # stopped
                    return None
                rows.append(row)
                if progress:
                    tqdm.write(f"{row['strategy']:24s} seed {seed}: {row['metric']} {row['final']:.4g}  "
                               f"({row['search_seconds']:.0f} s search)", file=sys.stderr)
                bar.update()
    labels = [s.label for s, _ in configs]
    table = _table(rows, budget, labels)
    atomic_write(root / "comparison.md", lambda f: f.write(table.encode("utf-8")))
    with RunLogger(root) as logger:
        logger.write_json("comparison.json", rows)
        for label in labels:
            finals = [r["final"] for r in rows if r["strategy"] == label]
            logger.scalars({f"compare/{label}/final_mean": statistics.fmean(finals)}, 0)
            for r in rows:
                if r["strategy"] == label:
                    logger.scalar(f"compare/{label}/final", r["final"], r["seed"])
    return table, rows


def _entrant(strategy: type[Strategy], cfg, train_cfg, budget: float, where: Path) -> dict | None:
    """One strategy and seed: search for `budget` seconds in where/search, take its architecture, train it
    from scratch in where/final; its row of the table (None when stopped)."""
    start = time.monotonic()
    with stop_on_interrupt() as stop, locked(where / "search"):
        search = strategy.start(cfg, where / "search", progress=False)
        search.run(deadline=start + budget)
        searched = time.monotonic() - start
        if stop:
            return None
        arch_json = search.result()
    if arch_json is None:  # derive stopped
        return None
    arch = Arch.from_json(arch_json)
    with locked(where / "final"):
        result = FinalTraining.start(arch, train_cfg, where / "final", progress=False).run()
    if result is None:
        return None
    m = next(k for k in result if k.startswith("test_"))
    with RunLogger(where) as entrant:  # the entrant's row in TensorBoard's HPARAMS tab
        entrant.hparams(run_hparams(cfg, "compare", entrant=strategy.label, budget_s=float(budget)),
                        {f"hparams/final_{m}": result[m], "hparams/search_seconds": searched})
    return {"strategy": strategy.label, "seed": cfg.seed, "arch": str(arch), "search_seconds": searched,
            "derive_seconds": time.monotonic() - start - searched, "final": result[m], "metric": m}


def _table(rows: list[dict], budget: float, labels: list[str]) -> str:
    metric = rows[0]["metric"]
    lines = [f"| strategy | {metric} (mean ± sd) | per seed | search s | derive + final s |",
             "| --- | --- | --- | --- | --- |"]
    for label in labels:
        rs = [r for r in rows if r["strategy"] == label]
        finals = [r["final"] for r in rs]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        lines.append(f"| {label} | {statistics.fmean(finals):.4g} ± {sd:.2g} | "
                     f"{', '.join(f'{f:.4g}' for f in finals)} | "
                     f"{statistics.fmean(r['search_seconds'] for r in rs):.0f} | "
                     f"{statistics.fmean(r['derive_seconds'] for r in rs):.0f} |")
    return (f"Search budget {budget:g} s of wall-clock time per strategy and seed; every derived "
            f"architecture trained from scratch with the same final recipe.\n\n" + "\n".join(lines) + "\n")
