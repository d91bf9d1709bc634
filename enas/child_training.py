"""One child of full NAS (Zoph & Le 2017): built with fresh weights, trained from scratch on the
training split for a budget of epochs, scored on the validation split after every epoch.

`train_child` is the work an executor runs, in process, in a worker process or as a Ray task; its
argument and result are plain dicts so they cross process boundaries as they are.
"""
from __future__ import annotations

import math
import time

from .arch import Arch
from .config import TrainConfig, from_dict
from .interrupt import Stopped


def child_payload(arch: Arch, train_config: dict) -> dict:
    return {"space": arch.space.name, "options": dict(arch.space.options), "arch": str(arch),
            "config": train_config}


def train_child(payload: dict) -> dict:
    """-> {"metrics": [validation metric per epoch], "metric": "ppl"|"acc", "seconds", "parameters"};
    raises Stopped when a stop (Ctrl-C, SIGTERM) cut the training short: a partly trained child has no
    reward to report."""
    from .train import FinalTraining, count_parameters

    arch = Arch.from_json(payload)
    cfg = from_dict(TrainConfig, payload["config"])
    start = time.perf_counter()
    run = FinalTraining(arch, cfg, run_dir=None, progress=False)
    if run.run(test=False) is None:
        raise Stopped(f"child {payload['arch']!r} stopped before the end of its training")
    return {"metrics": run.history, "metric": run.task.metric, "seconds": time.perf_counter() - start,
            "parameters": count_parameters(run.model)}


def nas_reward(result: dict, last: int = 5, c: float = 80.0) -> float:
    """Zoph & Le 2017: images, the cube of the best validation accuracy over the last 5 epochs;
    language models, c / valid_ppl^2 (here with the best perplexity over the same epochs)."""
    tail = result["metrics"][-last:]
    if not tail or not all(math.isfinite(m) for m in tail):
        return 0.0
    if result["metric"] == "acc":
        return max(tail) ** 3
    best = min(tail)
    return c / best / best  # not c / best ** 2: the square of a diverged perplexity (> 1e154) overflows
