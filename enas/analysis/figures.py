"""The analysis's pictures, on matplotlib.figure.Figure directly (Agg canvas, no pyplot state); matplotlib
is imported here, where a picture is made."""
from __future__ import annotations

import numpy as np
import torch

from .groups import GROUPS, LABELS

def png(fig) -> bytes:
    """The figure as PNG bytes, for a file written atomically."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


COLORS = {"trained": "#1f77b4", "untrained": "#ff7f0e", "uniform": "#7f7f7f"}


def reward_histograms(metric: dict[str, list], reward: dict[str, list], metric_name: str, batches: int):
    """The three groups' metric and reward distributions, overlaid, on common bins (one panel each).
    Diverged architectures (non-finite metric) are left out of the metric panel and counted in its legend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    axes = fig.subplots(1, 2)
    for ax, values, name in ((axes[0], metric, metric_name), (axes[1], reward, "reward")):
        finite = {g: np.asarray(values[g], dtype=np.float64) for g in GROUPS}
        finite = {g: v[np.isfinite(v)] for g, v in finite.items()}
        pooled = np.concatenate(list(finite.values()))
        bins = np.histogram_bin_edges(pooled, bins=40) if pooled.size else 10
        for g in GROUPS:
            lost = len(values[g]) - finite[g].size
            label = f"{LABELS[g]} (mean {finite[g].mean():.4g})" if finite[g].size else LABELS[g]
            ax.hist(finite[g], bins=bins, histtype="stepfilled", alpha=0.25, color=COLORS[g])
            ax.hist(finite[g], bins=bins, histtype="step", lw=1.5, color=COLORS[g],
                    label=label + (f", {lost} diverged" if lost else ""))
        ax.set_xlabel(f"{name} on the shared weights ({batches} validation batches)")
        ax.set_ylabel("architectures")
        ax.legend(fontsize=8)
    fig.suptitle("Where the architectures come from: trained controller, initial controller, uniform")
    fig.tight_layout()
    return fig


def hidden_state_heatmap(states: torch.Tensor, tokens: torch.Tensor, step_names: list[str],
                         spreads: dict[str, list[float]]):
    """Top: the trained controller's hidden states [n, S, H] of n sampled architectures, one row each
    (sorted by arc string, so equal and similar architectures sit together), columns the S decision steps
    times the H units, step by step (black lines between steps). Colour = the unit's raw value on one
    fixed scale, [-1, 1] (an LSTM's output o * tanh(c) lies there), so rows that are the same look the
    same: the blog study's figure (a), where a controller that ignores what it sampled draws identical
    rows. Bottom: per step, how much the rows differ (mean pairwise distance over mean norm), for the
    trained and the untrained controller."""
    from matplotlib.figure import Figure

    n, S, H = states.shape
    order = sorted(range(n), key=lambda r: tokens[r].tolist())
    image = states[order].reshape(n, S * H).double().cpu().numpy()
    fig = Figure(figsize=(12, 7))
    top, bottom = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1.3]})
    shown = top.imshow(image, aspect="auto", cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    for j in range(1, S):
        top.axvline(j * H - 0.5, color="black", lw=0.5)
    every = max(1, S // 24)
    ticks = list(range(0, S, every))
    top.set_xticks([j * H + H / 2 for j in ticks], [step_names[j] for j in ticks], rotation=60, fontsize=7)
    top.set_ylabel(f"{n} sampled architectures")
    top.set_title(f"Trained controller's hidden state at each decision step ({H} units per step)")
    fig.colorbar(shown, ax=top, fraction=0.02, pad=0.01)
    for name, values in spreads.items():
        bottom.plot(range(S), values, marker=".", color=COLORS[name], label=f"{name} controller")
    bottom.set_xticks(ticks, [step_names[j] for j in ticks], rotation=60, fontsize=7)
    bottom.set_xlim(-0.5, S - 0.5)
    bottom.set_ylabel("spread")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig


def embedding_distances(distance: dict[str, torch.Tensor], tokens_apart: torch.Tensor, rho: dict[str, float]):
    """Embedding distance against token (Hamming) distance over all pairs, per controller: the median and
    the quartiles of the embedding distance at each token distance."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    apart = tokens_apart.numpy()
    ks = np.unique(apart)
    for name, d in distance.items():
        d = d.numpy()
        q = np.array([np.percentile(d[apart == k], (25, 50, 75)) for k in ks])  # [K, 3]
        ax.plot(ks, q[:, 1], marker=".", color=COLORS[name], label=f"{name} controller (Spearman {rho[name]:.2f})")
        ax.fill_between(ks, q[:, 0], q[:, 2], color=COLORS[name], alpha=0.2)
    ax.set_xlabel("tokens that differ (Hamming distance)")
    ax.set_ylabel("embedding distance")
    ax.set_title("Controller embeddings of uniform architectures")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rank_fidelity_scatter(shared: list[float], alone: list[float], metric_name: str, tau: float | None,
                          rho: float | None, preset_name: str):
    """Each architecture's metric on the shared weights (x) against its metric trained from scratch (y),
    with Kendall's tau and Spearman's rho in the title: points on a rising (or, for perplexity, also
    rising) line mean the shared weights rank as training from scratch does."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.scatter(shared, alone, s=22, color=COLORS["uniform"], edgecolor="black", lw=0.5)
    ax.set_xlabel(f"{metric_name} on the shared weights")
    ax.set_ylabel(f"{metric_name} trained from scratch ({preset_name} recipe)")
    words = ", ".join(f"{name} {value:+.3f}" for name, value in (("Kendall tau", tau), ("Spearman", rho))
                      if value is not None)
    ax.set_title(f"Rank fidelity of {len(shared)} architectures" + (f"\n{words}" if words else ""), fontsize=10)
    fig.tight_layout()
    return fig


def against_histogram(trained: list[float], other: list[float], other_run: str, other_kind: str):
    """The rewards of this run's trained controller on its own shared weights and of the other run's
    architectures (`other_kind`) on the other run's shared weights, on common bins."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.subplots()
    a, b = np.asarray(trained, dtype=np.float64), np.asarray(other, dtype=np.float64)
    bins = np.histogram_bin_edges(np.concatenate([a, b]), bins=40)
    for values, color, label in ((a, COLORS["trained"], "trained controller, its run's shared weights"),
                                 (b, COLORS["untrained"], f"{other_kind}, {other_run}'s shared weights")):
        ax.hist(values, bins=bins, histtype="stepfilled", alpha=0.25, color=color)
        ax.hist(values, bins=bins, histtype="step", lw=1.5, color=color, label=f"{label} (mean {values.mean():.4g})")
    ax.set_xlabel("reward")
    ax.set_ylabel("architectures")
    ax.set_title("Each search's architectures on the weights trained under its own controller", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
