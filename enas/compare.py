"""`enas compare`: the registered strategies (ENAS, full NAS, random search with and without weight
sharing, ...) on one space and task, under the same search budget, over several seeds.

The entrants are the strategies that fit the space and task (`Strategy.unfit`), in the registry's
order, or those named. Every one searches for `budget` seconds of wall-clock time on this machine (the
same device for all), then its architecture is the one its runs yield (`Strategy.result`: weight
sharing derives the best of N on the shared weights; without sharing, the best child), and each is
trained from scratch with one and the same final recipe. The table reports the final metric of each
strategy (mean with its 95% confidence interval over seeds) and its search cost, and for each pair of
strategies the difference of their final metrics paired by seed (seed k of both draws the same data
order), with its interval: the strategies separate where that interval excludes 0.

ROOT/config.json holds the comparison's arguments. Each run directory is locked while the comparison
writes it. A stop (Ctrl-C, SIGTERM) ends the comparison after the current search, derive or final
training has saved, and `--resume` with the same arguments continues it: a finished entrant
(ROOT/<strategy>/seed<k>/entrant.json) is not run again, a final training continues from its checkpoint,
and a search stopped before its budget ran out starts over, since a budget of wall-clock time split by a
stop would not be the budget the others had.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .analysis.stats import mean_interval
from .arch import Arch
from .checkpoint import atomic_write
from .config import apply_overrides, knows
from .errors import CheckpointError, ConfigError
from .hparams import run_hparams
from .interrupt import stop_on_interrupt
from .logger import RunLogger
from .presets import preset
from .registry import SPACES
from .rundir import locked, read_json, remove, run_files
from .strategies import Strategy, get_strategy, list_strategies
from .train import FinalTraining

# what every entrant's search is told, so that only the budget ends it
UNBOUNDED = 1_000_000
PLAN = "config.json"        # ROOT/: the comparison's arguments, which --resume must repeat
SEARCHED = "searched.json"  # ROOT/<strategy>/seed<k>/: the architecture its search and derive gave
DONE = "entrant.json"       # ROOT/<strategy>/seed<k>/: the entrant's row, once its final training ended


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
            progress: bool = True, strategies: list[str] | None = None,
            resume: bool = False) -> tuple[str, list[dict]] | None:
    """Runs everything under logdir/<strategy>/seed<k>/{search,final}; returns the markdown table and
    the raw figures, also written to logdir/comparison.md and logdir/comparison.json; None when stopped.
    `strategies`: the names to compare (default: every registered strategy that fits); `resume`: continue
    the comparison logdir holds, started with the same arguments."""
    root = Path(logdir)
    configs = entrant_configs(space, task, data_dir, preset_name, search_overrides, strategies)
    plan = {"space": space, "task": task, "data_dir": data_dir, "preset": preset_name, "budget": budget,
            "seeds": seeds, "strategies": [s.name for s, _ in configs], "set": list(search_overrides),
            "train_set": list(train_overrides)}
    if resume:
        check_plan(root, plan)
    else:
        atomic_write(root / PLAN, lambda f: f.write((json.dumps(plan, indent=2) + "\n").encode("utf-8")))
    entrants = [(strategy, base, seed) for strategy, base in configs for seed in range(seeds)]
    done = sum((root / s.name / f"seed{k}" / DONE).exists() for s, _, k in entrants)
    rows = []
    # one bar for the whole job, its ETA from the entrants this process has run
    with tqdm(total=len(entrants), initial=done, unit=" entrant", desc="compare", dynamic_ncols=True,
              disable=not progress) as bar:
        for strategy, base, seed in entrants:
            where = root / strategy.name / f"seed{seed}"
            if (where / DONE).exists():
                rows.append(read_json(where / DONE, "the finished entrant's row"))
                continue
            bar.set_postfix_str(f"{strategy.label}, seed {seed}")
            train_cfg = apply_overrides(preset("train", task, preset_name, space),
                                        [f"data_dir={data_dir}", *train_overrides, f"seed={seed}"])
            row = _entrant(strategy, apply_overrides(base, [f"seed={seed}"]), train_cfg, budget, where)
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


def check_plan(root: Path, plan: dict) -> None:
    """CheckpointError unless root holds a comparison started with the arguments of `plan`."""
    if not (root / PLAN).exists():
        raise CheckpointError(f"nothing to resume in {root}: it holds no {PLAN} of a comparison")
    before = read_json(root / PLAN, "the comparison's arguments")
    if not isinstance(before, dict):
        raise CheckpointError(f"{root / PLAN} is not the arguments of a comparison; start it over with --overwrite")
    changed = [k for k in plan if before.get(k) != plan[k]]
    if changed:
        k = changed[0]
        raise CheckpointError(f"--resume: the comparison in {root} ran with {k} {before.get(k)!r}, not "
                              f"{plan[k]!r}; resume it with the same arguments")


def _entrant(strategy: type[Strategy], cfg, train_cfg, budget: float, where: Path) -> dict | None:
    """One strategy and seed: search for `budget` seconds in where/search, take its architecture, train it
    from scratch in where/final; its row of the table (None when stopped). What an earlier, stopped
    comparison finished of it is kept (the module's docstring)."""
    if (where / SEARCHED).exists():
        searched = read_json(where / SEARCHED, "the entrant's searched architecture")
    else:
        searched = _search(strategy, cfg, budget, where)
        if searched is None:
            return None
        atomic_write(where / SEARCHED, lambda f: f.write((json.dumps(searched, indent=2) + "\n").encode("utf-8")))
    arch = Arch.from_json(searched["arch_json"])
    start = time.monotonic()
    with locked(where / "final"):
        if (where / "final" / "results.json").exists():  # it ended, its row was not written yet
            result = read_json(where / "final" / "results.json", "the entrant's final results")
        elif (where / "final" / "checkpoints" / "last.pt").exists():
            result = FinalTraining.resume(where / "final", progress=False).run()
        else:
            result = FinalTraining.start(arch, train_cfg, where / "final", progress=False).run()
    if result is None:
        return None
    m = next(k for k in result if k.startswith("test_"))
    with RunLogger(where) as entrant:  # the entrant's row in TensorBoard's HPARAMS tab
        entrant.hparams(run_hparams(cfg, "compare", entrant=strategy.label, budget_s=float(budget)),
                        {f"hparams/final_{m}": result[m], "hparams/search_seconds": searched["search_seconds"]})
    row = {"strategy": strategy.label, "seed": cfg.seed, "arch": str(arch),
           "search_seconds": searched["search_seconds"], "derive_seconds": searched["derive_seconds"],
           "final_seconds": time.monotonic() - start, "final": result[m], "metric": m}
    atomic_write(where / DONE, lambda f: f.write((json.dumps(row, indent=2) + "\n").encode("utf-8")))
    return row


def _search(strategy: type[Strategy], cfg, budget: float, where: Path) -> dict | None:
    """Search for `budget` seconds in where/search (from the start: a stopped one's files go first) and
    derive: {"arch_json", "search_seconds", "derive_seconds"}, None when stopped."""
    start = time.monotonic()
    with stop_on_interrupt() as stop, locked(where / "search"):
        remove(run_files(where / "search"))
        search = strategy.start(cfg, where / "search", progress=False)
        search.run(deadline=start + budget)
        searched = time.monotonic() - start
        if stop:
            return None
        arch_json = search.result()
    if arch_json is None:  # derive stopped
        return None
    return {"arch_json": arch_json, "search_seconds": searched, "derive_seconds": time.monotonic() - start - searched}


def _table(rows: list[dict], budget: float, labels: list[str]) -> str:
    """comparison.md: per strategy the final metric's mean with its 95% confidence interval over seeds,
    then the paired differences of every two strategies."""
    metric = rows[0]["metric"]
    by = {label: sorted((r for r in rows if r["strategy"] == label), key=lambda r: r["seed"]) for label in labels}
    lines = [f"| strategy | {metric}: mean [95% CI] | sd | per seed | search s | derive + final s |",
             "| --- | --- | --- | --- | --- | --- |"]
    for label, rs in by.items():
        finals = [r["final"] for r in rs]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        lines.append(f"| {label} | {_interval(mean_interval(finals))} | {sd:.2g} | "
                     f"{', '.join(f'{f:.4g}' for f in finals)} | "
                     f"{statistics.fmean(r['search_seconds'] for r in rs):.0f} | "
                     f"{statistics.fmean(r['derive_seconds'] + r.get('final_seconds', 0.0) for r in rs):.0f} |")
    pairs = ["| A - B | mean difference [95% CI] | seeds |", "| --- | --- | --- |"]
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            finals_b = {r["seed"]: r["final"] for r in by[b]}
            diffs = [r["final"] - finals_b[r["seed"]] for r in by[a] if r["seed"] in finals_b]
            pairs.append(f"| {a} - {b} | {_interval(mean_interval(diffs))} | {len(diffs)} |")
    return (f"Search budget {budget:g} s of wall-clock time per strategy and seed; every derived "
            f"architecture trained from scratch with the same final recipe. Intervals: Student's t over seeds.\n\n"
            + "\n".join(lines) + "\n\nPaired by seed (the same seed, the same data order):\n\n"
            + "\n".join(pairs) + "\n")


def _interval(ci: dict) -> str:
    if ci["low"] is None:
        return f"{ci['mean']:.4g}"
    return f"{ci['mean']:.4g} [{ci['low']:.4g}, {ci['high']:.4g}]"
