"""Derive (Pham et al. 2018, sec. 2.2): sample N architectures from the trained policy, score each on
the shared weights over one validation batch, keep the best. ENAS-pytorch uses N = 100 and the
first validation batch, so every candidate is scored on the same data.

A derive writes the candidates' records (phase "derive") in place of an earlier derive's, then
RUN/arch.json. Stopped (Ctrl-C, SIGTERM) while scoring, it writes nothing; it is seeded, so running it
again gives the same architecture."""
from __future__ import annotations

import torch

from ..arch import Arch
from ..errors import ConfigError
from ..interrupt import stop_on_interrupt
from ..logger import cell_figure, cell_text
from ..rundir import read_archs
from ..runtime import absolute_data_dir

MAX_SAMPLES = 100_000
# Candidates scored together in one forward (`score_many`); the controller update's batch of the
# paper (10 architectures, OFF --controller_num_aggregate=10), which bounds the gathered edge weights
# (10 cells of 12 nodes at hidden 1000: 880 MB in float32) and lets Ctrl-C stop between chunks.
SCORE_CHUNK = 10


def check_samples(n: int, what: str = "--samples") -> None:
    """ConfigError unless n candidates (1 .. MAX_SAMPLES) can be derived from."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise ConfigError(f"{what} must be a whole number in 1..{MAX_SAMPLES:,}, got {n!r}")


def best_on_shared_weights(search, samples: int | None = None) -> dict | None:
    """`enas derive` of a weight-sharing search (weight_sharing.py): the best of N of its policy's
    candidates; writes RUN/arch.json and returns it, None when stopped."""
    n = search.cfg.derive_samples if samples is None else samples
    check_samples(n, "--samples" if samples is not None else "derive_samples")
    torch.manual_seed(search.cfg.seed)  # the same run derives the same architecture
    return write_best(search, search.policy.candidates(n),
                      f"best of {n} architectures {search.policy.candidates_from}, scored on the shared weights "
                      f"on the first validation batch")


def write_best(search, tokens: torch.Tensor, how: str) -> dict | None:
    """Score the architectures tokens [n, L] on the shared weights over the first validation batch, record
    them (phase "derive", in place of an earlier derive's), write the best to RUN/arch.json
    ({"space", "options", "arch", "task", "metric", "how"}) and return it; None when stopped."""
    e = search.engine
    read_archs(e.run_dir)  # refuses an altered archs.jsonl before its derive rows are replaced
    batch = e.task.first_reward_batch()
    scores = []
    with stop_on_interrupt() as stop:
        for chunk in tokens.split(SCORE_CHUNK):
            if stop:
                return None
            scores.append(e.task.score_many(e.supernet, chunk, batch))     # [<= SCORE_CHUNK]
    metric = torch.cat(scores)                                             # [n]
    reward = e.task.reward(metric)
    best = int(torch.argmax(reward))
    archs = [Arch(e.space, t) for t in tokens.tolist()]
    e.logger.keep_archs(lambda record: record.get("phase") != "derive")
    for a, m, r in zip(archs, metric.tolist(), reward.tolist()):
        e.logger.arch({"step": e.policy_step, "epoch": e.epoch, "phase": "derive",
                       "arch": str(a), "reward": r, "metric": m})
    result = archs[best].to_json(task=search.cfg.task, data_dir=absolute_data_dir(search.cfg.data_dir),
                                 metric=float(metric[best]), metric_name=e.task.metric, how=how)
    e.logger.write_json("arch.json", result)
    e.logger.text("derive/arch", cell_text(e.space, archs[best]), e.global_step)
    e.logger.figure("derive/cell", cell_figure(e.space, archs[best]), e.global_step)
    e.logger.close()
    return result
