"""Small statistics on plain arrays: rank correlations, the probability of superiority, confidence
intervals, summaries. The rank statistics are scipy's (`scipy.stats`), so every figure the analysis
reports is the one a reader recomputes with the same library.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

QUANTILES = (5, 25, 50, 75, 95)


def spearman(x, y) -> float:
    """Spearman's rank correlation of paired samples x, y [n] (ties take their mean rank). NaN when either
    side is constant (no ranking to correlate)."""
    x, y = _paired(x, y, "spearman")
    if _constant(x) or _constant(y):
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def kendall(x, y) -> float:
    """Kendall's tau-b of paired samples x, y [n]: the rank agreement Sciuto et al. 2019 report between
    shared-weight and standalone rankings. NaN when either side is constant."""
    x, y = _paired(x, y, "kendall")
    if _constant(x) or _constant(y):
        return math.nan
    return float(stats.kendalltau(x, y).statistic)


def superiority(a, b) -> float:
    """P(A > B) + P(A = B) / 2 for A drawn from a [n] and B from b [m]: the Mann-Whitney U statistic of a
    over n * m. 0.5 when neither tends to be larger."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(stats.mannwhitneyu(a, b).statistic / (a.size * b.size))


def mean_interval(values, confidence: float = 0.95) -> dict:
    """The mean of values [n] with its Student-t confidence interval ({"mean", "low", "high", "n"}); the
    bounds are None for fewer than two values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    mean = float(v.mean())
    if v.size < 2:
        return {"mean": mean, "low": None, "high": None, "n": int(v.size)}
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": int(v.size)}


def _paired(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"{what}: {x.size} and {y.size} values are not paired")
    return x, y


def _constant(v: np.ndarray) -> bool:
    return v.size == 0 or bool(np.all(v == v[0]))


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
