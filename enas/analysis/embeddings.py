"""What the controller's LSTM state says about architectures (the blog study "Understanding Neural
Architecture Search", 2019): do its hidden states differ between architectures at all, and does the
state after the last decision, read as an embedding, place similar architectures close together?

Dissimilarities are generic over the decision kinds of a space (spaces/decisions.py):
- "ops": Choice decisions (activations, ops) that differ, position by position;
- "op_counts": ops not in common when each architecture's ops are taken as a multiset (per Choice
  group, sum over options of |count_a - count_b| / 2), so that moving an op to another node costs nothing;
- "connections": Predecessor choices and Subset bits (skip connections) that differ;
- "tokens": tokens that differ (the Hamming distance of the arc strings; ops + connections).
"""
from __future__ import annotations

import torch

from ..spaces.decisions import Choice
from .stats import spearman

DISSIMILARITIES = {"ops": "ops / activations that differ, node by node",
                   "op_counts": "ops / activations not in common as multisets",
                   "connections": "connections (predecessors, skip bits) that differ",
                   "tokens": "tokens that differ (Hamming distance)"}


def spread(states: torch.Tensor) -> float:
    """How much the rows of states [n, ...] differ: mean pairwise Euclidean distance of the flattened rows
    over their mean norm (0: all alike; about 1.41 for independent random directions of equal norm)."""
    flat = states.flatten(1).double()
    return float(torch.pdist(flat).mean() / flat.norm(dim=1).mean())


def step_spread(states: torch.Tensor) -> list[float]:
    """`spread` of each decision step of states [n, S, H] on its own: [S], where the architectures part."""
    return [spread(states[:, j]) for j in range(states.shape[1])]


def dissimilarities(space, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each of DISSIMILARITIES between all pairs i < j of the architectures tokens [n, L], as vectors
    [n (n - 1) / 2] in the order of torch.pdist."""
    tokens = tokens.cpu()
    n = tokens.shape[0]
    i, j = torch.triu_indices(n, n, 1)
    differ = tokens[i] != tokens[j]                                    # [P, L]
    choice = torch.zeros(space.num_tokens, dtype=torch.bool)
    counts = []                                                        # per Choice group: [n, options]
    groups: dict[str, list[int]] = {}
    for d, pos in zip(space.decisions, space.offsets):
        if isinstance(d, Choice):
            choice[pos] = True
            groups.setdefault(d.group, []).append(pos)
    for positions in groups.values():
        values = tokens[:, positions]                                  # [n, k]
        width = int(values.max()) + 1
        counts.append(torch.nn.functional.one_hot(values, width).sum(1))  # [n, width]
    op_counts = sum(((c[i] - c[j]).abs().sum(1) for c in counts), torch.zeros(i.shape[0], dtype=torch.long)) // 2
    return {"ops": differ[:, choice].sum(1), "op_counts": op_counts, "connections": differ[:, ~choice].sum(1),
            "tokens": differ.sum(1)}


def embedding_correlations(embeddings: dict[str, torch.Tensor], dissimilar: dict[str, torch.Tensor]) -> dict:
    """Spearman's rho between the Euclidean distance of embeddings [n, H] (one tensor per controller) and
    each dissimilarity, over all pairs: {dissimilarity: {controller: rho}} (NaN: a constant side)."""
    distance = {name: torch.pdist(e.double()).cpu().numpy() for name, e in embeddings.items()}
    return {key: {name: spearman(d, values.numpy()) for name, d in distance.items()}
            for key, values in dissimilar.items()}
