"""Progressive Neural Architecture Search (Liu et al. 2018, Algorithm 1): cells searched from simple to
complex, a learned surrogate choosing which to train.

    S_1 = every distinct one-block cell (or a seeded sample of `first_level` of them); train them all
    fit the surrogate on (cell, accuracy) of every child trained so far
    for b = 2 .. B:
        S'_b = every expansion of a cell of S_{b-1} by one block (duplicates dropped)
        S_b  = the `beam` (K) cells of S'_b the surrogate ranks highest; train them
        measure how well the surrogate ranked S_b (Spearman, Kendall), then refit it on everything

B is the space's `num_blocks`. Each level is one batch of the child pool of full NAS (pool.py): the
same executors (in process, worker processes, Ray), one record per finished child, SIGINT/SIGTERM
abandon the children in flight, and `--resume` trains no finished child again and continues within a
level. A level's cells are chosen once, from a surrogate fitted with a seeded generator on the
checkpoint's history, and kept in the checkpoint until trained, so a resumed search equals an
uninterrupted one.

`random_control=true` is the control the paper's question needs: at each level b >= 2 it trains
`beam` cells of b blocks drawn uniformly at random instead of the surrogate's top K (the surrogate is
still fitted, and its correlations measured, on those cells).

The search's result (arch.json) is the best child of the deepest level trained: the paper's answer
is a cell of B blocks, and a budget that stops the search earlier leaves the best cell it reached.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from scipy import stats

from ..arch import Arch
from ..config import SearchPreset
from ..nn.surrogate import KINDS, Ensemble
from ..spaces import get_space
from .base import register
from .pool import ChildPoolSearch


@dataclass
class PnasConfig:
    """The progressive search's section: the beam, the first level, the surrogate."""

    beam: int = 256               # K: cells trained per level b >= 2 (the paper's K = 256)
    first_level: int = 0          # one-block cells trained at level 1 (0 = all 136, as the paper)
    predictor: str = "lstm"       # the surrogate: "lstm" (the paper's) or "mlp" (its alternative)
    ensemble: int = 5             # predictors, each fitted on 4/5 of the cells (the paper's 5)
    predictor_epochs: int = 50    # passes of each predictor over its cells (not in the paper)
    random_control: bool = False  # levels >= 2 train uniform random cells instead of the surrogate's top K

    ranges: ClassVar[dict] = {"beam": ">= 1", "ensemble": ">= 1", "predictor_epochs": ">= 1"}
    choices: ClassVar[dict] = {"predictor": KINDS}
    fixed_keys: ClassVar[tuple[str, ...]] = ("beam", "first_level", "predictor", "ensemble", "predictor_epochs",
                                             "random_control")


@register
class Pnas(ChildPoolSearch):
    name = "pnas"
    description = "PNAS (Liu et al. 2018): cells grown block by block, a surrogate picks which to train"
    Section = PnasConfig
    length_key = "space_options.num_blocks"
    picked = "grown block by block, the surrogate's top cells"

    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> PnasConfig:
        return PnasConfig(**recipe.sections.get("pnas", {}))

    @classmethod
    def unfit(cls, space: type, task: str) -> str | None:
        if not hasattr(space, "expansions"):
            return "PNAS grows cells block by block: it needs the pnas space"
        return None

    @classmethod
    def unbounded(cls, cfg, n: int):
        """PNAS ends after its B levels; a budget may stop it sooner (its levels are its length)."""
        return cfg

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        return int(state["batch"]) >= get_space(cfg.space, **cfg.space_options).blocks

    def __init__(self, cfg, run_dir, progress: bool = True):
        super().__init__(cfg, run_dir, progress)
        self.blocks = self.space.blocks             # B
        self.history: list[tuple[str, float]] = []  # (arc, accuracy) of every child trained without error
        self.levels: list[dict] = []                # what each finished level showed (summary, TensorBoard)
        self.pool.parse, self.pool.describe = self.parse, self.describe
        # the best child of the deepest level: the paper's answer is a cell of B blocks
        self.pool.rank = lambda record: (record.get("level", 0), record["reward"])

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        with self.pool.running(self.save, max_units, deadline, total=self.total_children()) as pool:
            while pool.batch < self.blocks:
                cells = pool.draw(self.next_level)     # kept in the checkpoint until every cell is trained
                rewards = pool.train(cells)            # each from scratch, on the executor
                self.end_level(cells, pool.metrics())  # the surrogate's correlations; the history grows
                pool.end_batch(rewards)                # the next level, and a checkpoint
        return pool.finished

    # --- the levels ----------------------------------------------------------------------------
    def next_level(self) -> tuple[list[str], list[dict]]:
        """The cells of the level after those trained, with each one's level and predicted accuracy."""
        b, p = self.pool.batch + 1, self.cfg.pnas
        rng = random.Random(self.cfg.seed * 1_000_003 + b)
        if b == 1:
            cells = [a.tokens for a in self.space.one_block_cells()]
            if 0 < p.first_level < len(cells):
                cells = rng.sample(cells, p.first_level)
            return [" ".join(map(str, c)) for c in cells], [{"level": 1, "predicted": None} for _ in cells]
        surrogate = self.fit(b)
        if p.random_control:
            cells = self.uniform(b, p.beam, rng)
            predicted = surrogate.predict(cells).tolist()
        else:
            candidates = list(dict.fromkeys(c for parent in self.parents() for c in self.expand(parent)))
            scores = surrogate.predict(candidates).tolist()
            top = sorted(range(len(candidates)), key=lambda k: (-scores[k], k))[:p.beam]
            cells, predicted = [candidates[k] for k in top], [scores[k] for k in top]
        return [" ".join(map(str, c)) for c in cells], [{"level": b, "predicted": y} for y in predicted]

    def end_level(self, cells: list[str], accuracy: list[float | None]) -> None:
        """The level's figures (how the surrogate ranked it, before it is refitted) and its cells in the
        history the next fit reads."""
        b = self.pool.batch + 1
        done = [(c, a) for c, a in zip(cells, accuracy) if a is not None]
        self.history += done
        level = {"level": b, "children": len(cells), "failed": len(cells) - len(done),
                 "mean": sum(a for _, a in done) / len(done) if done else None,
                 "best": max((a for _, a in done), default=None), "spearman": None, "kendall": None}
        extras = self.pool.pending.get("extras", [])
        pairs = [(e["predicted"], a) for e, a in zip(extras, accuracy) if e.get("predicted") is not None and a is not None]
        if len(pairs) >= 3:
            predicted, actual = zip(*pairs)
            level["spearman"] = _finite(stats.spearmanr(predicted, actual).statistic)
            level["kendall"] = _finite(stats.kendalltau(predicted, actual).statistic)
        self.levels.append(level)
        self.logger.scalars({f"pnas/{k}": v for k, v in level.items()
                             if k in ("mean", "best", "spearman", "kendall") and v is not None}, b)

    def fit(self, b: int) -> Ensemble:
        """The surrogate fitted on every child trained so far (seeded by the level)."""
        p = self.cfg.pnas
        cells = [tuple(map(int, c.split())) for c, _ in self.history]
        return Ensemble(p.predictor, num_inputs=self.blocks + 1, num_ops=len(self.space.op_names),
                        members=p.ensemble, epochs=p.predictor_epochs, seed=self.cfg.seed * 1_000 + b
                        ).fit(cells, [a for _, a in self.history])

    def parents(self) -> list[tuple[int, ...]]:
        """S_{b-1}: the cells of the last level whose child finished."""
        last = self.pool.batch
        return [tuple(map(int, c.split())) for c, _ in self.history if len(c.split()) == 4 * last]

    def expand(self, cell: tuple[int, ...]) -> list[tuple[int, ...]]:
        b = len(cell) // 4
        return [cell + blk for blk in self.space.blocks_for(b)]

    def uniform(self, b: int, n: int, rng: random.Random) -> list[tuple[int, ...]]:
        """n distinct cells of b blocks, uniform over the canonical cells (each block uniform over the
        distinct blocks it can be)."""
        seen: dict[tuple[int, ...], None] = {}
        choices = [self.space.blocks_for(j) for j in range(b)]
        while len(seen) < n:
            seen[tuple(t for blk in (rng.choice(c) for c in choices) for t in blk)] = None
        return list(seen)

    # --- what the pool asks ----------------------------------------------------------------------
    def parse(self, text: str) -> Arch:
        """An arc of any level: a cell of b blocks is an Arch of the space with num_blocks = b."""
        words = str(text).replace(",", " ").split()
        b = len(words) // 4 if len(words) % 4 == 0 and 4 <= len(words) <= 4 * self.blocks else self.blocks
        return Arch.parse(get_space(self.cfg.space, **{**self.cfg.space_options, "num_blocks": b}), text)

    def total_children(self) -> int:
        p = self.cfg.pnas
        first = p.first_level or len(self.space.blocks_for(0))
        return min(first, len(self.space.blocks_for(0))) + (self.blocks - 1) * p.beam

    def describe(self) -> str:
        b = self.pool.batch + 1
        done = len(self.pool.pending["rewards"]) if self.pool.pending else 0
        total = len(self.pool.pending["archs"]) if self.pool.pending else 0
        last = next((lv["spearman"] for lv in reversed(self.levels) if lv["spearman"] is not None), None)
        rho = f", surrogate spearman {last:.2f}" if last is not None else ""
        return f"level {b}/{self.blocks}: {done}/{total}{rho}; "

    # --- checkpoints and the summary ---------------------------------------------------------------
    def policy_state(self) -> dict:
        return {"history": [[c, a] for c, a in self.history], "levels": self.levels}

    def load_policy_state(self, state: dict) -> None:
        self.history = [(str(c), float(a)) for c, a in state["history"]]
        self.levels = [dict(level) for level in state["levels"]]

    def summary(self, run, seconds: float) -> tuple[list[str], dict]:
        lines, data = super().summary(run, seconds)
        data["levels"] = self.levels
        table = ["  level  children  mean acc  best acc  spearman  kendall   (surrogate vs actual, before refitting)"]
        for lv in self.levels:
            table.append(f"  {lv['level']:>5}  {lv['children']:>8}  {_fmt(lv['mean'])}  {_fmt(lv['best'])}  "
                         f"{_fmt(lv['spearman'], '+.3f')}  {_fmt(lv['kendall'], '+.3f')}")
        return lines[:2] + table + lines[2:], data


def _finite(x: float) -> float | None:
    """A correlation, None where it is undefined (constant predictions or accuracies)."""
    return float(x) if x == x else None


def _fmt(x, spec: str = ".4f") -> str:
    return f"{x:{spec}}".rjust(8) if x is not None else "     n/a"


__all__ = ["Pnas", "PnasConfig"]
