"""Row-sparse against dense shared updates of the ENAS recurrent supernet, as ratios measured in one run.

For N=12 nodes (66 stacked edge weights, 11 read per step), batch 64, BPTT 35, vocabulary 10000 and
the paper's optimiser (SGD lr 20, clip 0.25, weight decay 1e-7), at each hidden size:
- dense shared step: the gathered rows get a dense [66,H,2H] gradient, decayed, clipped and stepped
  whole (what `guarded_step` does for torch SGD without `make_sgd`'s ledgers);
- sparse shared step: the gradient holds the 11 read rows; the other rows' decay waits in the ledger
  (`make_sgd` + `guarded_step`, enas/optim.py);
and at the largest size the standalone child step (inherited weights, dense SGD over its own 11 rows)
for the same architecture, against the sparse supernet step (target <= 1.02).

A step is forward + backward + `guarded_step` on one sampled architecture; an update is the same
`guarded_step` on a loss linear in the weights the step reads (backward: one multiply per weight),
i.e. the optimiser's share alone. Variants alternate step by step; the median of the rounds is
reported. Tokens are random ids (speed does not depend on the text). Usage:
    python benchmarks/bench_sparse.py [--hidden 200 1000] [--rounds 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import enas
from enas.config import OptimConfig
from enas.optim import guarded_step, make_sgd

V, B, T, N = 10000, 64, 35, 12
# dropout of the official search recipe (OFF ptb_search.sh keep probs e .75, x .25, h .75, o .25)
DROP = dict(dropout_e=0.25, dropout_x=0.75, dropout_h=0.25, dropout_o=0.75)
CFG = OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=1e-7)  # paper: lr 20, clip 0.25, l2 1e-7


def _timed_step(model, opt, tokens, arch=None) -> float:
    start = time.perf_counter()
    logits, _ = model(tokens[:-1], None) if arch is None else model(tokens[:-1], None, arch)
    loss = F.cross_entropy(logits.reshape(-1, V), tokens[1:].reshape(-1))
    guarded_step(opt, loss, CFG)
    return time.perf_counter() - start


def _timed_update(model, opt, probes, rows=None) -> float:
    """The update alone: guarded_step on a loss linear in every weight the step reads (its backward
    is one multiply per weight), so that the gradients have the shapes and sparsity of a real step."""
    start = time.perf_counter()
    loss = sum((w * probe).sum() for w, probe in zip(_read_weights(model, rows), probes))
    guarded_step(opt, loss, CFG)
    return time.perf_counter() - start


def _read_weights(model, rows):
    edges = model.w_nodes if rows is None else model.edge_weights(rows, distinct=True)
    return [model.embedding.weight, model.w_x, model.w_h0, edges, model.decoder_bias]


def bench(hidden: int, rounds: int, with_child: bool) -> dict[str, float]:
    space = enas.get_space("enas_rnn", num_nodes=N)
    torch.manual_seed(0)
    net = enas.build_supernet(space, vocab_size=V, hidden_size=hidden, max_hidden_norm=25.0, **DROP).train()
    sparse_opt = make_sgd(net, CFG)  # turns row-sparse gradients on and owns the ledger
    dense_opt = torch.optim.SGD(net.parameters(), lr=CFG.lr)  # no ledgers: the dense step
    arch = space.sample(seed=0)  # one architecture, so the child is built (and warmed up) once
    rows = net.edge_base + arch.tensor().index_select(0, net.prev_pos)
    child = child_opt = None
    if with_child:
        child = enas.build_child(space, arch, vocab_size=V, hidden_size=hidden, max_hidden_norm=25.0, **DROP)
        enas.inherit_weights(child, net, arch)
        child_opt = make_sgd(child.train(), CFG)
    probes = [torch.randn_like(w) * 1e-3 for w in _read_weights(net, rows)]
    times: dict[str, list[float]] = {}
    for r in range(rounds + 1):  # round 0 warms up
        tokens = torch.randint(0, V, (T + 1, B), generator=torch.Generator().manual_seed(r))
        t = {}
        net.use_row_sparse_gradients(False)  # writes the pending decay (outside the timing)
        t["dense step"] = _timed_step(net, dense_opt, tokens, arch.tensor())
        t["dense update"] = _timed_update(net, dense_opt, probes, rows)
        net.use_row_sparse_gradients(True)
        t["sparse step"] = _timed_step(net, sparse_opt, tokens, arch.tensor())
        t["sparse update"] = _timed_update(net, sparse_opt, probes, rows)
        if child is not None:
            t["child step"] = _timed_step(child, child_opt, tokens)
            t["child update"] = _timed_update(child, child_opt, probes)
        print(f"  hidden {hidden} round {r}{' (warm-up)' if not r else ''}: "
              + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()), flush=True)
        if r:
            for k, v in t.items():
                times.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; N={N}, batch {B}, BPTT {T}, V={V}")
    for hidden in args.hidden:
        t = bench(hidden, args.rounds, with_child=hidden == max(args.hidden))
        for part in ("step", "update"):
            print(f"hidden {hidden}: dense {part} {t['dense ' + part]:.3f} s, sparse {part} "
                  f"{t['sparse ' + part]:.3f} s, dense / sparse = {t['dense ' + part] / t['sparse ' + part]:.2f}")
            if "child " + part in t:
                print(f"hidden {hidden}: supernet sparse {part} / child {part} = "
                      f"{t['sparse ' + part] / t['child ' + part]:.3f} (child {t['child ' + part]:.3f} s)")


if __name__ == "__main__":
    main()
