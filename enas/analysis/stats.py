"""Small statistics on plain arrays: ranks, Spearman's rho, the probability of superiority, summaries.

Written with numpy so that the analysis needs no scipy (not a dependency of the project).
"""
from __future__ import annotations

import math

import numpy as np

QUANTILES = (5, 25, 50, 75, 95)


def rankdata(x) -> np.ndarray:
    """Ranks 1..n of the values of x [n], ties sharing the mean of their ranks (scipy's "average")."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]           # where a run of equal values starts, [n]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]                  # one past each run's end
    mean_rank = (starts + ends + 1) / 2.0             # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = mean_rank[np.cumsum(first) - 1]
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation of paired samples x, y [n]: Pearson's r of their average ranks.
    NaN when either side is constant (no ranking to correlate)."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.size != ry.size:
        raise ValueError(f"spearman: {rx.size} and {ry.size} values are not paired")
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float(rx @ rx) * float(ry @ ry))
    return float(rx @ ry) / denominator if denominator > 0 else math.nan


def superiority(a, b) -> float:
    """P(A > B) + P(A = B) / 2 for A drawn from a [n] and B from b [m]: the Mann-Whitney U statistic over
    n * m, from the ranks of the pooled values. 0.5 when neither tends to be larger."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[:a.size].sum() - a.size * (a.size + 1) / 2
    return float(u / (a.size * b.size))


def describe(values) -> dict:
    """Mean, std, min, max and the QUANTILES (percent) of the finite values of `values` [n]; None for
    each when there is none."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": {str(q): None for q in QUANTILES}}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
            "quantiles": {str(q): float(np.percentile(v, q)) for q in QUANTILES}}


def finite_or_none(value: float) -> float | None:
    """A number for strict JSON: NaN and infinities become null."""
    return float(value) if math.isfinite(value) else None
