"""The analysis as people read it: RUN/analysis/report.md (markdown tables) and the command's summary."""
from __future__ import annotations

from ..logger import format_metric
from .embeddings import DISSIMILARITIES
from .groups import GROUPS, LABELS
from .stats import QUANTILES


def _num(value, digits: str = ".4g") -> str:
    return "n/a" if value is None else format(value, digits)


def markdown(a: dict) -> str:
    """report.md of an analysis (the dict analysis.json holds)."""
    m, groups, h, e = a["metric"], a["groups"], a["hidden_states"], a["embeddings"]
    fm = lambda v: format_metric(m, v)  # noqa: E731
    lines = [f"# Controller analysis of {a['run']}", "",
             f"{a['space']} on {a['task']} after {a['epochs']} epochs ({a['controller_updates']} controller "
             f"updates). Each group holds {a['samples']} architectures, scored on the shared weights: valid {m} "
             f"over the first {a['batches']} validation batches, the same batches for every architecture; "
             f"reward as the search defines it.", "",
             "## Trained controller, initial controller, uniform", "",
             f"| group | mean reward | mean {m} | " + " | ".join(f"{m} {q}%" for q in QUANTILES)
             + " | distinct | diverged |",
             "|---|---:|---:|" + "---:|" * len(QUANTILES) + "---:|---:|"]
    for g in GROUPS:
        s = groups[g]
        lines.append(f"| {LABELS[g]} | {_num(s['reward']['mean'])} | {fm(s['metric']['mean'])} | "
                     + " | ".join(fm(s["metric"]["quantiles"][str(q)]) for q in QUANTILES)
                     + f" | {s['distinct']} | {s['diverged']} |")
    lines += ["", "Within this run: did the controller learn which architectures these shared weights favour? "
                  "(Every group is scored on the weights the trained controller shaped.)"]
    for other in ("uniform", "untrained"):
        c = a["comparison"][f"trained_vs_{other}"]
        lines += ["", f"Trained controller against {LABELS[other]}: mean reward {c['reward_difference']:+.4g}; "
                      f"the trained one earns more in {c['win_rate']:.1%} of pairs (ties count half)."]
    if "against" in a:
        o = a["against"]
        c, s = o["comparison"], o["group"]
        lines += ["", "## Against a search whose controller never learned", "",
                  f"Does a search with a learning controller end better than one without? Each run's "
                  f"architectures on the shared weights trained under its own controller: {a['run']} (trained "
                  f"controller) against {o['run']} ({o['strategy']}, {o['architectures_from']}), mean reward "
                  f"{_num(s['reward']['mean'])}, median {m} {fm(s['metric']['quantiles']['50'])}. Mean reward "
                  f"{c['reward_difference']:+.4g}; the trained one earns more in {c['win_rate']:.1%} of pairs."]
    lines += ["", "## Hidden states", "",
              f"Top LSTM state at each of {h['steps']} decision steps ({h['hidden_size']} units) for "
              f"{h['architectures']} sampled architectures. Spread (mean pairwise distance of the flattened "
              f"states over their mean norm; 0 = all alike): trained {_num(h['spread']['trained'], '.3f')}, "
              f"untrained {_num(h['spread']['untrained'], '.3f')}.", "",
              "## Embeddings", "",
              f"Embedding = the state after the last decision (teacher forced), for {e['architectures']} uniform "
              f"architectures ({e['pairs']} pairs). Spearman's rho between the embeddings' Euclidean distance "
              f"and each dissimilarity:", "",
              "| dissimilarity | trained | untrained |", "|---|---:|---:|"]
    for key, rho in e["spearman"].items():
        lines.append(f"| {DISSIMILARITIES[key]} | {_num(rho['trained'], '.3f')} | {_num(rho['untrained'], '.3f')} |")
    return "\n".join(lines) + "\n"


def summary_lines(a: dict, files: list[str]) -> list[str]:
    """The command's last words: the three groups, the hidden-state spread and the embedding check."""
    m, groups = a["metric"], a["groups"]
    lines = [f"analyzed {a['space']} on {a['task']}: {a['samples']} architectures per group on the shared weights, "
             f"valid {m} over the first {a['batches']} validation batches"]
    for g in GROUPS:
        s = groups[g]
        lines.append(f"  {LABELS[g] + ':':<35} mean reward {_num(s['reward']['mean'])}, median {m} "
                     f"{format_metric(m, s['metric']['quantiles']['50'])}, {s['distinct']} distinct")
    c = a["comparison"]["trained_vs_uniform"]
    lines.append(f"  trained against uniform: reward {c['reward_difference']:+.4g}, "
                 f"wins {c['win_rate']:.1%} of pairs")
    if "against" in a:
        c = a["against"]["comparison"]
        lines.append(f"  against {a['against']['run']}, each on its own shared weights: reward "
                     f"{c['reward_difference']:+.4g}, wins {c['win_rate']:.1%} of pairs")
    h, rho = a["hidden_states"]["spread"], a["embeddings"]["spearman"]["tokens"]
    lines.append(f"  hidden-state spread: trained {_num(h['trained'], '.3f')}, "
                 f"untrained {_num(h['untrained'], '.3f')}; "
                 f"embedding distance vs token distance: Spearman {_num(rho['trained'], '.2f')} (trained), "
                 f"{_num(rho['untrained'], '.2f')} (untrained)")
    lines.append(f"  written to {a['run']}/analysis: {', '.join(files)} (and analysis/... in TensorBoard)")
    lines.append(f"  next: ENAS_RUN={a['run']} jupyter lab notebooks/controller_analysis.ipynb  (Jupyter: "
                 f"pip install -e \".[notebooks]\")")
    return lines
