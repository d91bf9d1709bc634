"""Three groups of architectures scored on the same shared weights: what the trained controller samples,
what the same controller sampled at its initial weights, and uniformly random ones.

Sciuto et al. 2019 ("Evaluating the search phase of neural architecture search") and the blog study
"Understanding Neural Architecture Search" (2019) both ask whether ENAS's controller learns more than
random sampling on the same shared weights gives. Here every architecture is scored as the search
scores its rewards (`task.score_many`: a batch of architectures in one forward where the supernet
allows it, each validation batch from a zero state) over the first `batches` validation batches, the
same batches for all, so the three reward distributions differ only by where the architectures come
from.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from tqdm import tqdm

from ..interrupt import stop_on_interrupt
from .stats import describe, superiority

GROUPS = ("trained", "untrained", "uniform")
LABELS = {"trained": "trained controller", "untrained": "controller at its initial weights",
          "uniform": "uniformly random"}


def initial_controller(search):
    """The controller as the search had it before its first update: a fresh search of the same class and
    config (not loaded from the checkpoint) builds it after the same seeding and the same construction
    order, so nothing here repeats that order. Its task and supernet are dropped at once."""
    fresh = type(search)(search.cfg, search.run_dir, progress=False)
    controller = fresh.policy.controller
    del fresh
    return controller.eval()


def draw(search, untrained, n: int, seed: int) -> dict[str, torch.Tensor]:
    """n architectures per group, token rows [n, L] on the search's device: sampled (not greedy) from the
    trained and from the untrained controller, and drawn uniformly by the space (random search's draw).

    The groups are independent draws (seeds seed, seed + 1, seed + 2), as the rank statistics comparing
    them assume. With one seed for both controllers a controller that has barely moved would repeat the
    other's sample architecture for architecture."""
    e = search.engine

    def sampled(controller, seed: int) -> torch.Tensor:
        generator = torch.Generator(device=e.device).manual_seed(seed)
        with torch.no_grad():
            return controller.sample(n, generator=generator).tokens

    return {"trained": sampled(search.policy.controller.eval(), seed), "untrained": sampled(untrained, seed + 1),
            "uniform": uniform(search, n, seed + 2)}


def uniform(search, n: int, seed: int) -> torch.Tensor:
    """n architectures [n, L] drawn uniformly by the space (random search's draw), on the search's device."""
    e, rng = search.engine, random.Random(seed)
    return torch.tensor([e.space.sample(rng=rng).tokens for _ in range(n)], dtype=torch.long,
                        device=e.device).reshape(n, -1)


def score(search, groups: dict[str, torch.Tensor], batches: int, progress: bool = True) -> dict[str, list] | None:
    """The task's metric of every architecture on the shared weights, per group a list [n] in row order;
    None when stopped (Ctrl-C, SIGTERM). Each distinct architecture is evaluated once (eval mode, so the
    same architecture always gets the same number), SCORE_CHUNK of them per forward."""
    from ..strategies.derive import SCORE_CHUNK

    e = search.engine
    distinct = list(dict.fromkeys(tuple(row) for t in groups.values() for row in t.tolist()))
    data = e.task.reward_batches(batches)
    metric: dict[tuple, float] = {}
    with stop_on_interrupt() as stop, tqdm(total=len(distinct), desc="scoring", unit=" arch", dynamic_ncols=True,
                                           disable=not progress) as bar:
        for i in range(0, len(distinct), SCORE_CHUNK):
            if stop:
                return None
            chunk = distinct[i:i + SCORE_CHUNK]
            tokens = torch.tensor(chunk, dtype=torch.long, device=e.device)              # [<= SCORE_CHUNK, L]
            metric.update(zip(chunk, e.task.score_over(e.supernet, tokens, data).tolist()))
            bar.update(len(chunk))
    return {g: [metric[tuple(row)] for row in t.tolist()] for g, t in groups.items()}


def rewards(search, metric: list[float]) -> list[float]:
    """The task's reward of each metric (PTB: c / ppl, 0 for a diverged one; images: the accuracy)."""
    return search.engine.task.reward(torch.tensor(metric, dtype=torch.float64)).tolist()


def summarise(tokens: torch.Tensor, metric: list[float], reward: list[float]) -> dict:
    """A group's statistics: n, distinct architectures, diverged ones (non-finite metric), the metric and
    the reward (mean, std, min, max, quantiles 5/25/50/75/95 of the finite values) and its best member."""
    rows = [tuple(r) for r in tokens.tolist()]
    m = np.asarray(metric, dtype=np.float64)
    best = int(np.argmax(reward))
    return {"n": len(rows), "distinct": len(set(rows)), "diverged": int((~np.isfinite(m)).sum()),
            "metric": describe(m), "reward": describe(reward),
            "best": {"arch": " ".join(map(str, rows[best])), "metric": float(m[best]), "reward": reward[best]}}


def compare(reward: dict[str, list[float]], first: str, second: str) -> dict:
    """How the rewards of group `first` stand against `second`: the difference of the means and the
    probability that an architecture of `first` earns more than one of `second` (ties count half)."""
    return {"reward_difference": float(np.mean(reward[first]) - np.mean(reward[second])),
            "win_rate": superiority(reward[first], reward[second])}
