"""Does the trained controller learn anything that random sampling on the same shared weights does not?

The question of Sciuto et al. 2019 ("Evaluating the search phase of neural architecture search") and of
the blog study "Understanding Neural Architecture Search" (2019), asked of one enas run:

1. groups.py: N architectures sampled from the trained controller, N from the same controller at its
   initial weights, N uniform; each scored on the shared weights over the same validation batches.
2. embeddings.py: the controller's hidden states at every decision step, and whether its state after
   the last decision (an embedding of the architecture) is close for similar architectures.

`analyze(RUN)` writes RUN/analysis/ (analysis.json, scores.json, report.md, rewards.png,
hidden_states.png, embeddings.png) and logs the same under `analysis/...` in the run's TensorBoard.
Stopped (Ctrl-C, SIGTERM) while scoring, it writes nothing; it is seeded with the run's seed, so running
it again gives the same numbers.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..checkpoint import atomic_write
from ..errors import CheckpointError, ConfigError
from . import figures
from .against import against, check_against
from .embeddings import dissimilarities, embedding_correlations, spread, step_spread
from .groups import GROUPS, compare, draw, initial_controller, rewards, score, summarise
from .report import markdown, summary_lines
from .stats import kendall, mean_interval, spearman, superiority

MAX_BATCHES = 10_000
HIDDEN_ARCHS = 100    # sampled architectures whose hidden states are drawn
EMBED_ARCHS = 200     # uniform architectures whose embeddings are compared (all pairs)
FILES = ("analysis.json", "scores.json", "report.md", "rewards.png", "hidden_states.png", "embeddings.png")
# and against.png, with --against


def check_options(samples: int | None, batches: int | None) -> None:
    """ConfigError unless samples (architectures per group, the bound `enas derive` has) and batches are
    in range; None is the run's own value (analyze_samples, analyze_batches)."""
    from ..strategies.derive import check_samples

    if samples is not None:
        check_samples(samples)
    if batches is None:
        return
    if isinstance(batches, bool) or not isinstance(batches, int) or not 1 <= batches <= MAX_BATCHES:
        raise ConfigError(f"--batches must be a whole number in 1..{MAX_BATCHES:,}, got {batches!r}")


def check_strategy(strategy, run) -> None:
    """CheckpointError unless the strategy's runs have the groups compared here (its registration's
    `analyze_groups`): a trained controller, and shared weights to score architectures on."""
    from ..strategies import get_strategy, list_strategies

    if set(GROUPS) <= set(strategy.analyze_groups):
        return
    has = {(True, False): "shared weights but no controller", (False, True): "a controller but no shared weights",
           (False, False): "neither a controller nor shared weights"}.get(
        (strategy.shared_weights, strategy.has_controller), "no groups")
    fit = [n for n in list_strategies() if set(GROUPS) <= set(get_strategy(n).analyze_groups)]
    raise CheckpointError(f"{run} is a {strategy.name} search: it has {has} to analyse; analyze needs a search "
                          f"with a trained controller and shared weights ({', '.join(fit)})")


def check_run(run_dir) -> None:
    """CheckpointError unless run_dir holds a search of a strategy analyze applies to (check_strategy),
    with a checkpoint."""
    from ..strategies import strategy_of

    run = Path(run_dir)
    check_strategy(strategy_of(run_dir, "analyze"), run)
    if not (run / "checkpoints" / "last.pt").exists():
        raise CheckpointError(f"{run} holds no checkpoints/last.pt to analyse: run the search (or resume it) first")


def analyze(run_dir, samples: int | None = None, batches: int | None = None, overrides=(),
            progress: bool = True, against_run=None) -> dict | None:
    """Analyse the enas run in run_dir (config `overrides` on top, e.g. the device); the analysis.json
    dict, or None when stopped. samples, batches: None takes the run's analyze_samples, analyze_batches;
    against_run: a run whose controller never learned, each run scored on its own shared weights
    (against.py)."""
    from ..strategies import load_search

    check_options(samples, batches)
    check_run(run_dir)
    search = load_search(run_dir, list(overrides), progress=progress)
    other = None if against_run is None else load_search(against_run, list(overrides), progress=progress)
    return analyze_search(search, samples, batches, progress, other)


def analyze_search(search, samples: int | None = None, batches: int | None = None,
                   progress: bool = True, other=None) -> dict | None:
    """`analyze` on a search already loaded (`enas.strategies.load_search`); `other`: a loaded run to
    compare with, each on its own shared weights (against.py)."""
    cfg, e, controller = search.cfg, search.engine, search.policy.controller
    samples = cfg.analyze_samples if samples is None else samples
    batches = cfg.analyze_batches if batches is None else batches
    check_options(samples, batches)
    check_strategy(type(search), search.run_dir)
    if other is not None:
        check_against(search, other)
    untrained = initial_controller(search)
    tokens = draw(search, untrained, samples, cfg.seed)            # group -> [N, L]
    metric = score(search, tokens, batches, progress)              # group -> [N]
    if metric is None:
        return None
    reward = {g: rewards(search, metric[g]) for g in GROUPS}
    versus = None if other is None else against(search, other, reward["trained"], samples, batches, progress)
    if other is not None and versus is None:
        return None

    with torch.no_grad():
        sampled = tokens["trained"][:HIDDEN_ARCHS]
        states = {"trained": controller.hidden_states(sampled),             # [n, D + 1, H]
                  "untrained": untrained.hidden_states(tokens["untrained"][:HIDDEN_ARCHS])}
        uniform = tokens["uniform"][:EMBED_ARCHS]
        embeddings = {"trained": controller.hidden_states(uniform)[:, -1],  # [m, H]
                      "untrained": untrained.hidden_states(uniform)[:, -1]}
    dissimilar = dissimilarities(e.space, uniform)
    rho = embedding_correlations(embeddings, dissimilar)
    spreads = {name: step_spread(s) for name, s in states.items()}
    names = [e.space.decisions[t].name for t in controller.decision_order] + ["after the last"]
    m = e.task.metric
    result = {
        "run": str(e.run_dir), "space": cfg.space, "task": cfg.task, "metric": m,
        "higher_is_better": e.task.higher_is_better, "seed": cfg.seed, "samples": samples, "batches": batches,
        "epochs": e.epoch, "controller_updates": e.policy_step, "step": e.global_step,
        "groups": {g: summarise(tokens[g], metric[g], reward[g]) for g in GROUPS},
        "comparison": {"trained_vs_uniform": compare(reward, "trained", "uniform"),
                       "trained_vs_untrained": compare(reward, "trained", "untrained")},
        "hidden_states": {"architectures": states["trained"].shape[0], "steps": states["trained"].shape[1],
                          "hidden_size": states["trained"].shape[2], "step_names": names,
                          "spread": {k: spread(s) for k, s in states.items()}, "step_spread": spreads},
        "embeddings": {"architectures": uniform.shape[0], "pairs": len(dissimilar["tokens"]), "group": "uniform",
                       "distance": "euclidean", "spearman": rho},
    }
    if versus is not None:
        result["against"] = {k: v for k, v in versus.items() if k != "reward"}
    result = _strict(result)
    pictures = {
        "rewards": figures.reward_histograms(metric, reward, m, batches),
        "hidden_states": figures.hidden_state_heatmap(states["trained"], sampled, names, spreads),
        "embeddings": figures.embedding_distances({k: torch.pdist(e.double()).cpu() for k, e in embeddings.items()},
                                                  dissimilar["tokens"], rho["tokens"]),
    }
    if versus is not None:
        pictures["against"] = figures.against_histogram(reward["trained"], versus["reward"], versus["run"],
                                                        versus["architectures_from"])
    _write(search, result, tokens, metric, reward, pictures)
    return result


def _write(search, result: dict, tokens, metric, reward, pictures: dict) -> None:
    """RUN/analysis/* and the `analysis/...` TensorBoard tags, once everything is computed."""
    log, step, out = search.engine.logger, search.engine.global_step, Path(search.engine.run_dir) / "analysis"
    log.write_json("analysis/analysis.json", result)
    log.write_json("analysis/scores.json", _strict({
        g: [{"arch": " ".join(map(str, t)), "metric": mt, "reward": r}
            for t, mt, r in zip(tokens[g].tolist(), metric[g], reward[g])] for g in GROUPS}))
    report = markdown(result)
    atomic_write(out / "report.md", lambda f: f.write(report.encode("utf-8")))
    for name, fig in pictures.items():
        data = figures.png(fig)
        atomic_write(out / f"{name}.png", lambda f: f.write(data))
    m = result["metric"]
    for g, s in result["groups"].items():
        log.scalars({f"analysis/{g}/reward_mean": _nan(s["reward"]["mean"]),
                     f"analysis/{g}/{m}_median": _nan(s["metric"]["quantiles"]["50"]),
                     f"analysis/{g}/distinct": s["distinct"]}, step)
    if "against" in result:
        log.scalar("analysis/trained_vs_other_run/win_rate", result["against"]["comparison"]["win_rate"], step)
    log.scalars({"analysis/trained_vs_uniform/win_rate": result["comparison"]["trained_vs_uniform"]["win_rate"],
                 **{f"analysis/hidden_spread/{k}": _nan(v) for k, v in result["hidden_states"]["spread"].items()},
                 **{f"analysis/embedding_spearman/{key}/{k}": _nan(v)
                    for key, rho in result["embeddings"]["spearman"].items() for k, v in rho.items()}}, step)
    log.text("analysis/report", report, step)
    for name, fig in pictures.items():
        log.figure(f"analysis/{name}", fig, step)
    log.close()


def _strict(obj):
    """obj with NaN and infinities as None, for strict JSON."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _nan(value) -> float:
    return math.nan if value is None else value


__all__ = ["analyze", "analyze_search", "check_options", "check_run", "check_strategy", "summary_lines", "markdown",
           "kendall", "mean_interval", "spearman", "superiority", "initial_controller", "FILES"]
