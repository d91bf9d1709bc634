"""Rank fidelity: do the shared weights rank architectures as training each from scratch does?

Sciuto et al. 2019 ("Evaluating the search phase of neural architecture search") measure it as Kendall's
tau between the two rankings. Here, for a weight-sharing search (enas, random with shared weights,
darts):

1. `samples` architectures drawn uniformly (seeded), each scored on the shared weights as `enas analyze`
   scores its groups (groups.score);
2. K of the distinct ones picked at evenly spaced ranks of that score, so that they span its range;
3. each trained from scratch with the final recipe of a preset, validated on the split the shared-weight
   score used (the search's held-out images, or PTB's validation text), through the executors of full
   NAS (enas/executors.py: in this process, worker processes, Ray);
4. Kendall's tau and Spearman's rho between the shared-weight metric and the standalone one (scipy).

RUN/analysis/standalone.jsonl gains one row per trained architecture as it finishes, so a stopped
analysis (Ctrl-C, SIGTERM: the children in flight are abandoned) resumes without training a finished
one again: a row of the same architecture and recipe (preset and `--train-set` overrides) is reused,
whatever K it was picked for.
RUN/analysis/rank_fidelity.json and rank_fidelity.png hold the result; TensorBoard gets the figure and
`analysis/rank_fidelity/{kendall,spearman}`.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import torch
from tqdm import tqdm

from ..arch import Arch
from ..checkpoint import atomic_write
from ..child_training import child_payload
from ..config import apply_overrides, to_dict
from ..errors import CheckpointError, ConfigError
from ..executors import check_executor, make_executor
from ..interrupt import stop_on_interrupt
from ..presets import preset
from ..runtime import absolute_data_dir
from . import _nan
from .groups import rewards, score, uniform
from .stats import finite_or_none, kendall, spearman

ROWS = "analysis/standalone.jsonl"
RESULT = "analysis/rank_fidelity.json"
PICTURE = "analysis/rank_fidelity.png"


def check_standalone(strategy, run) -> None:
    """CheckpointError unless the strategy's runs have shared weights to rank architectures with."""
    if not strategy.shared_weights:
        raise CheckpointError(f"{run} is a {strategy.name} search: it has no shared weights, so there is no "
                              f"shared-weight ranking to compare with training from scratch")


def spread_picks(scores, k: int) -> list[int]:
    """Indices of k of the scores [n] at evenly spaced ranks, lowest to highest (the lowest and the highest
    always among them). Ties keep their draw order, so the picks depend only on the scores."""
    if not 1 <= k <= len(scores):
        raise ConfigError(f"--standalone {k}: there are {len(scores)} distinct architectures to pick from; "
                          f"pick 1..{len(scores)} or draw more with --samples")
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")
    ranks = np.round(np.linspace(0, len(scores) - 1, k)).astype(int)
    return [int(order[r]) for r in ranks]


def recipe(search, preset_name: str, overrides=()) -> dict:
    """The final recipe of `preset_name` for this run's space and task, validated where the shared-weight
    score was (images: the search's held-out training images)."""
    c = search.cfg
    cfg = preset("train", c.task, preset_name, c.space)
    cfg = apply_overrides(cfg, [f"data_dir={absolute_data_dir(c.data_dir)}", f"device={c.device}",
                                f"num_valid={c.num_valid}", "log_every=1000000000", *overrides])
    return to_dict(cfg)


def rank_fidelity(search, k: int, preset_name: str = "small", samples: int | None = None,
                  batches: int | None = None, executor: str = "local", workers: int = 1,
                  train_overrides=(), progress: bool = True) -> dict | None:
    """The rank fidelity of the loaded weight-sharing `search` over k architectures (the module's
    docstring); the rank_fidelity.json dict, or None when stopped."""
    e, c = search.engine, search.cfg
    check_standalone(type(search), search.run_dir)
    samples = c.analyze_samples if samples is None else samples
    batches = c.analyze_batches if batches is None else batches
    if not 1 <= k <= samples:
        raise ConfigError(f"--standalone must be in 1..{samples} (--samples), got {k}")
    check_executor(executor, workers, c.cpus_per_child, c.gpus_per_child)
    train_cfg = recipe(search, preset_name, train_overrides)

    # not the seeds of the groups (groups.draw): another draw; each distinct architecture once
    drawn = list(dict.fromkeys(map(tuple, uniform(search, samples, c.seed + 3).tolist())))
    tokens = torch.tensor(drawn, dtype=torch.long, device=e.device).reshape(len(drawn), -1)
    metric = score(search, {"uniform": tokens}, batches, progress)
    if metric is None:
        return None
    metric = metric["uniform"]
    reward = rewards(search, metric)
    picked = spread_picks(reward, k)
    archs = [Arch(e.space, drawn[i]) for i in picked]

    done = _rows(search.run_dir, preset_name, list(train_overrides))
    todo = [j for j, a in enumerate(archs) if str(a) not in done]
    with stop_on_interrupt() as stop, make_executor(executor, workers=workers, num_cpus=c.cpus_per_child,
                                                    num_gpus=c.gpus_per_child) as ex, \
            tqdm(total=k, initial=k - len(todo), desc="standalone", unit=" arch", dynamic_ncols=True,
                 disable=not progress) as bar:
        for j in todo:
            child_cfg = {**train_cfg, "seed": c.seed * 100_003 + j}
            ex.submit({"id": j, "attempt": 0, "payload": child_payload(archs[j], child_cfg)})
        for outcome in ex.results(lambda: bool(stop)):
            j, result = outcome["id"], outcome["result"]
            i = picked[j]
            row = {"arch": str(archs[j]), "preset": preset_name, "train_set": list(train_overrides),
                   "shared_metric": finite_or_none(metric[i]),
                   "shared_reward": reward[i], "metric_name": e.task.metric,
                   "standalone_metric": finite_or_none(result["metrics"][-1]) if result and result["metrics"] else None,
                   "seconds": outcome["seconds"], "error": outcome["error"]}
            _append(search.run_dir / ROWS, row)
            done[row["arch"]] = row
            bar.update()
            if progress and row["error"]:
                tqdm.write(f"{row['arch']}: {row['error']}", file=sys.stderr)
        if stop or any(str(a) not in done for a in archs):
            return None

    rows = [done[str(a)] for a in archs]
    ok = [r for r in rows if r["error"] is None and r["standalone_metric"] is not None
          and r["shared_metric"] is not None]
    shared, alone = [r["shared_metric"] for r in ok], [r["standalone_metric"] for r in ok]
    result = {"run": str(search.run_dir), "space": c.space, "task": c.task, "metric": e.task.metric,
              "preset": preset_name, "train_set": list(train_overrides), "samples": samples, "batches": batches,
              "architectures": k,
              "trained": len(ok), "failed": k - len(ok),
              "kendall": finite_or_none(kendall(shared, alone)) if len(ok) > 1 else None,
              "spearman": finite_or_none(spearman(shared, alone)) if len(ok) > 1 else None,
              "rows": rows}
    _write(search, result, shared, alone)
    return result


def _rows(run_dir, preset_name: str, overrides: list[str]) -> dict[str, dict]:
    """The rows of standalone.jsonl trained with `preset_name` and the train `overrides`, by arc string
    (the last of each). A last line a kill cut short is dropped from the file."""
    path = run_dir / ROWS
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = {}
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            if n == len(lines):  # half-written when the process was killed
                data = "".join(x + "\n" for x in lines[:-1]).encode("utf-8")
                atomic_write(path, lambda f: f.write(data))
                break
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("arch"), str) or "preset" not in row:
            raise CheckpointError(f"{path} line {n} is not a row of a standalone analysis; remove the file to "
                                  f"train its architectures again")
        if row["preset"] == preset_name and row.get("train_set", []) == overrides:
            rows[row["arch"]] = row
    return rows


def _append(path, row: dict) -> None:
    """One row more, flushed at once: a killed analysis keeps every child it finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _write(search, result: dict, shared: list[float], alone: list[float]) -> None:
    from .figures import png, rank_fidelity_scatter

    e = search.engine
    log, step = e.logger, e.global_step
    log.write_json(RESULT, result)
    fig = rank_fidelity_scatter(shared, alone, result["metric"], result["kendall"], result["spearman"],
                                result["preset"])
    data = png(fig)
    atomic_write(search.run_dir / PICTURE, lambda f: f.write(data))
    log.scalars({"analysis/rank_fidelity/kendall": _nan(result["kendall"]),
                 "analysis/rank_fidelity/spearman": _nan(result["spearman"])}, step)
    log.figure("analysis/rank_fidelity", fig, step)
    log.close()

