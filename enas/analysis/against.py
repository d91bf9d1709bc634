"""Trained against untrained controllers, each on the shared weights trained under it.

The within-run groups (groups.py) score the trained and the initial controller on the same shared
weights, those the trained controller shaped: they ask whether the controller learned which
architectures *these* weights favour. Adam & Lorraine 2019 ("Understanding Neural Architecture Search")
ask instead whether a search with a learning controller ends better than one whose controller never
learned, each with its own supernet: `enas analyze RUN --against OTHER`, OTHER a run of the same space
and task with shared weights and a controller that never updated (`--set controller.steps=0`) or none
(random search with shared weights). Its architectures are sampled from its controller, or drawn
uniformly where it has none, and scored on its own shared weights, over the same validation batches.
"""
from __future__ import annotations

import torch

from ..errors import CheckpointError
from .groups import compare, rewards, score, summarise, uniform


def check_against(search, other) -> None:
    """CheckpointError unless `other` is a run to compare `search` with: shared weights, the same space
    (with the same options) and task, and a controller that never learned (or none)."""
    run, c, o = other.run_dir, search.cfg, other.cfg
    if not type(other).shared_weights:
        raise CheckpointError(f"--against: {run} is a {o.strategy} search without shared weights; give a run "
                              f"with shared weights whose controller never learned, or a random search with them")
    for what, mine, theirs in (("space", c.space, o.space), ("task", c.task, o.task),
                               ("space options", search.space.options, other.space.options)):
        if mine != theirs:
            raise CheckpointError(f"--against: {run} searched {what} {theirs}, not {mine}; compare runs of one "
                                  f"space and task")
    updates = other.engine.policy_step if type(other).has_controller else 0
    if updates:
        raise CheckpointError(f"--against: the controller of {run} learned ({updates} updates); give a run whose "
                              f"controller never did (--set controller.steps=0) or a random search")


def draw_other(other, n: int, seed: int) -> torch.Tensor:
    """n architectures [n, L] of the other run: sampled from its (untrained) controller, or uniform."""
    e = other.engine
    if type(other).has_controller:
        generator = torch.Generator(device=e.device).manual_seed(seed + 3)
        with torch.no_grad():
            return other.policy.controller.eval().sample(n, generator=generator).tokens
    return uniform(other, n, seed + 3)


def against(search, other, trained_reward: list[float], n: int, batches: int, progress: bool = True) -> dict | None:
    """The other run's architectures on its own weights against this run's trained-controller rewards
    (trained_reward [n], scored on this run's weights); None when stopped."""
    tokens = draw_other(other, n, search.cfg.seed)
    metric = score(other, {"other": tokens}, batches, progress)
    if metric is None:
        return None
    reward = rewards(other, metric["other"])
    kind = "a controller that never learned" if type(other).has_controller else "uniform draws (no controller)"
    return {"run": str(other.run_dir), "strategy": other.cfg.strategy, "architectures_from": kind,
            "group": summarise(tokens, metric["other"], reward),
            "comparison": compare({"trained": trained_reward, "other": reward}, "trained", "other"),
            "reward": reward}
