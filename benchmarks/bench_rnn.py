"""Speed of the ENAS recurrent supernet on this machine, as ratios measured in one run.

For N=12 nodes, batch 64, BPTT 35, vocabulary 10000 (tied embedding), at hidden 200 and 1000:
- shared step (forward + backward + grad clip + SGD, a freshly sampled arch each step), tokens/s,
  for the fast path, the naive reference (same module, `reference=True`) and a "plain" baseline:
  one nn.Linear per edge (a ModuleDict of N(N-1)/2 Linear(H, 2H)) walked in Python per time step;
- reward evaluation: eval-mode forward of one 35 x 64 validation batch per arch, no grad, archs/s;
- reward evaluation of one controller update (10 architectures, the paper's batch): the batched path
  (enas/nn/rnn_batched.py: all 10 cells in one forward with batch 10 x 64) against the plain
  baseline and the fast path run once per architecture, interleaved; and where the batched path's
  time goes (edge gather, recurrence, decoder);
- supernet step / standalone child step (inherited weights) for the same arch.

For the NAS tree cell (`nas_rnn`, base 8): supernet step / standalone child step for the same
architecture (TensorFlow's NASCell and a sampled cell), alternating single steps in one run. Every
architecture reads every leaf, so the two hold the same tensors; the ratio is the supernet's cost of
decoding the architecture per forward (target <= 1.10).

Tokens are random ids (speed does not depend on the text). Usage:
    python benchmarks/bench_rnn.py [--quick] [--hidden 200 1000] [--spaces enas_rnn nas_rnn]
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import enas
from enas.nn import rnn_batched
from enas.nn.rnn_lm import default_init_range

V, B, T, N = 10000, 64, 35, 12
# dropout of the official search recipe (OFF ptb_search.sh keep probs e .75, x .25, h .75, o .25)
DROP = dict(dropout_e=0.25, dropout_x=0.75, dropout_h=0.25, dropout_o=0.75)
LR, CLIP = 20.0, 0.25  # paper: SGD lr 20, global-norm clip 0.25


class PlainSupernet(nn.Module):
    """The common simple implementation: a Linear per edge, a Python walk of the DAG per step."""

    def __init__(self, space, vocab_size, hidden_size, dropout_e=0.0, dropout_x=0.0, dropout_h=0.0, dropout_o=0.0):
        super().__init__()
        H = hidden_size
        self.space, self.H = space, H
        self.drop = (dropout_e, dropout_x, dropout_h, dropout_o)
        self.embedding = nn.Embedding(vocab_size, H)
        self.w_x = nn.Linear(H, 2 * H, bias=False)
        self.w_h0 = nn.Linear(H, 2 * H, bias=False)
        self.edges = nn.ModuleDict({f"{j}_{i}": nn.Linear(H, 2 * H, bias=False)
                                    for i in range(1, space.num_nodes) for j in range(i)})
        r = default_init_range(H)
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)
        self.acts = [torch.tanh, torch.relu, lambda z: z, torch.sigmoid]

    def _mask(self, p, shape, like):
        if not self.training or p == 0:
            return None
        return torch.bernoulli(like.new_full(shape, 1 - p)) / (1 - p)

    def forward(self, tokens, hidden, arch):
        prev, act = self.space.cell(arch.tokens)
        loose = self.space.loose_ends(arch.tokens)
        Tn, Bn = tokens.shape
        W = self.embedding.weight
        de, dx, dh, do = self.drop
        me, mx, mh, mo = (self._mask(de, (W.shape[0], 1), W), self._mask(dx, (Bn, self.H), W),
                          self._mask(dh, (Bn, self.H), W), self._mask(do, (Bn, self.H), W))
        h = W.new_zeros(Bn, self.H) if hidden is None else hidden
        We = W if me is None else W * me  # word dropout: rows of the embedding
        outs = []
        for t in range(Tn):
            x = F.embedding(tokens[t], We)
            if mx is not None:
                x = x * mx
            states = []
            for i in range(self.space.num_nodes):
                p = h if i == 0 else states[prev[i]]
                inp = p if mh is None else p * mh
                z = self.w_x(x) + self.w_h0(inp) if i == 0 else self.edges[f"{prev[i]}_{i}"](inp)
                zh, zc = z.chunk(2, dim=1)
                c = torch.sigmoid(zc)
                states.append(c * self.acts[act[i]](zh) + (1 - c) * p)
            h = sum(states[k] for k in loose) / len(loose)
            outs.append(h if mo is None else h * mo)
        return F.linear(torch.stack(outs), W), h


def make_step(model, opt, data, call):
    x, y = data

    def step(arch):
        opt.zero_grad(set_to_none=True)
        logits, _ = call(model, x, arch)
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    return step


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


@torch.no_grad()
def reward(model, call, data, arch):
    x, y = data
    logits, _ = call(model, x, arch)
    ppl = torch.exp(F.cross_entropy(logits.view(-1, V), y.view(-1)))
    return float(80.0 / ppl)  # read on the host, as the controller does


@torch.no_grad()
def batched_rewards(model, data, tokens):
    """Rewards [n] of the architectures `tokens` [n, L] in one forward, read on the host."""
    x, y = data
    ppl = torch.exp(rnn_batched.mean_cross_entropy(model, tokens, x, y))
    return (80.0 / ppl).tolist()


@torch.no_grad()
def batched_parts(model, data, tokens):
    """Seconds of the batched path's parts: gather (decode + edge weights + input projection),
    recurrence, decoder (logits and cross-entropy in chunks)."""
    x, y = data
    n, H = tokens.shape[0], model.hidden_size
    t0 = time.perf_counter()
    rows, prev, act, out_w = rnn_batched.decode(model, tokens)
    w_nodes = model.w_edges.index_select(0, rows.reshape(-1)).view(N - 1, n, H, 2 * H)
    xproj = torch.matmul(F.embedding(x, model.embedding.weight), model.w_x)
    t1 = time.perf_counter()
    Y = rnn_batched.recurrence(model, xproj, w_nodes, prev, act, out_w)
    t2 = time.perf_counter()
    targets = y.reshape(1, -1).expand(n, -1).reshape(-1)
    rnn_batched.decoder_losses(model, Y.view(-1, H), targets).view(n, -1).mean(1).tolist()
    return {"gather": t1 - t0, "recurrence": t2 - t1, "decoder": time.perf_counter() - t2}


def bench_update(fast, plain, space, data, rng, rounds, n=10):
    """Seconds per update of n rewards (median over rounds): batched, fast one by one, plain one by one;
    and the batched path's parts (median). The three are interleaved round by round."""
    sup_call = lambda m, x, a: m(x, None, a)  # noqa: E731
    impls = {
        "batched": lambda archs, toks: batched_rewards(fast, data, toks),
        "fast": lambda archs, toks: [reward(fast, sup_call, data, a) for a in archs],
        "plain": lambda archs, toks: [reward(plain, sup_call, data, a) for a in archs],
    }
    fast.eval()
    plain.eval()
    times, parts = {k: [] for k in impls}, []
    warm = [space.sample(rng=rng) for _ in range(2)]  # a short warm-up: first-call allocations
    for f in impls.values():
        f(warm, torch.tensor([a.tokens for a in warm]))
    for _ in range(rounds):
        archs = [space.sample(rng=rng) for _ in range(n)]
        toks = torch.tensor([a.tokens for a in archs])  # [n, L], what the controller hands over
        for k, f in impls.items():
            times[k].append(timed(f, archs, toks))
        parts.append(batched_parts(fast, data, toks))
    fast.train()
    plain.train()
    med = {k: statistics.median(v) for k, v in times.items()}
    return med, {k: statistics.median(p[k] for p in parts) for k in parts[0]}


def bench(H, rounds, eval_rounds, ratio_rounds, update_rounds, seed=0):
    """Implementations are interleaved step by step, so a busy machine slows them alike."""
    torch.manual_seed(seed)
    space = enas.get_space("enas_rnn", num_nodes=N)
    rng = random.Random(seed)
    data = (torch.randint(0, V, (T, B)), torch.randint(0, V, (T, B)))
    sup_call = lambda m, x, a: m(x, None, a)  # noqa: E731

    fast = enas.build_supernet(space, vocab_size=V, hidden_size=H, **DROP)
    naive = enas.build_supernet(space, vocab_size=V, hidden_size=H, reference=True, **DROP)
    plain = PlainSupernet(space, V, H, **DROP)
    models = {"fast": fast, "naive": naive, "plain": plain}
    steps = {k: make_step(m, torch.optim.SGD(m.parameters(), lr=LR), data, sup_call) for k, m in models.items()}
    step_t = {k: [] for k in models}
    for r in range(rounds + 1):  # round 0 is warm-up
        arch = space.sample(rng=rng)  # a fresh arch per step, the same for every implementation
        for k in models:
            dt = timed(steps[k], arch)
            if r:
                step_t[k].append(dt)
    eval_t = {k: [] for k in models}
    for m in models.values():
        m.eval()
    for r in range(eval_rounds + 1):
        arch = space.sample(rng=rng)
        for k, m in models.items():
            dt = timed(reward, m, sup_call, data, arch)
            if r:
                eval_t[k].append(dt)
    for m in models.values():
        m.train()
    rows = {k: (T * B / statistics.median(step_t[k]), 1.0 / statistics.median(eval_t[k])) for k in models}
    update = bench_update(fast, plain, space, data, rng, update_rounds)

    # supernet vs standalone child, same arch, alternating single steps
    arch = space.sample(rng=rng)
    child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, **DROP)
    enas.inherit_weights(child, fast, arch)
    c_step = make_step(child, torch.optim.SGD(child.parameters(), lr=LR), data, lambda m, x, a: m(x, None))
    s_t, c_t = [], []
    for r in range(ratio_rounds + 1):
        ds, dc = timed(steps["fast"], arch), timed(c_step, arch)
        if r:
            s_t.append(ds)
            c_t.append(dc)
    ratio = statistics.median(s_t) / statistics.median(c_t)
    return rows, ratio, T * B / statistics.median(c_t), update


def bench_tree(H, ratio_rounds, seed=0):
    """nas_rnn: {arch name: (supernet step / child step, child tokens/s)} for the same arch each."""
    torch.manual_seed(seed)
    space = enas.get_space("nas_rnn", base=8)
    data = (torch.randint(0, V, (T, B)), torch.randint(0, V, (T, B)))
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H, **DROP)
    s_step = make_step(sup, torch.optim.SGD(sup.parameters(), lr=LR), data, lambda m, x, a: m(x, None, a))
    out = {}
    for name, arch in (("nascell", enas.zoo.get("nascell")), ("sampled", space.sample(seed=seed))):
        child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, **DROP)
        enas.inherit_weights(child, sup, arch)
        c_step = make_step(child, torch.optim.SGD(child.parameters(), lr=LR), data, lambda m, x, a: m(x, None))
        tokens = arch.tensor()  # what a search passes: the arch as a LongTensor
        s_t, c_t = [], []
        for r in range(ratio_rounds + 1):  # round 0 is warm-up
            ds, dc = timed(s_step, tokens), timed(c_step, arch)
            if r:
                s_t.append(ds)
                c_t.append(dc)
        out[name] = (statistics.median(s_t) / statistics.median(c_t), T * B / statistics.median(c_t))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a rough figure in well under a minute)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--spaces", nargs="+", default=["enas_rnn", "nas_rnn"], choices=["enas_rnn", "nas_rnn"])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; N={N} B={B} T={T} V={V}")
    if "nas_rnn" in args.spaces:
        for H in args.hidden:
            t0 = time.perf_counter()
            rounds = (2 if args.quick else 4) if H >= 600 else (3 if args.quick else 10)
            for name, (ratio, child_tps) in bench_tree(H, rounds).items():
                print(f"{H:>5} nas_rnn {name}: supernet step / child step (same arch) = {ratio:.3f}  "
                      f"(child {child_tps:.0f} tok/s)")
            print(f"{H:>5} ({time.perf_counter() - t0:.0f} s)")
    if "enas_rnn" not in args.spaces:
        return
    print(f"{'H':>5} {'impl':>6} {'step tok/s':>11} {'reward archs/s':>15}")
    for H in args.hidden:
        big = H >= 600
        rounds = (1 if args.quick else 3) if big else (2 if args.quick else 8)
        evals = (2 if args.quick else 4) if big else (3 if args.quick else 12)
        ratio_rounds = (2 if args.quick else 4) if big else (3 if args.quick else 10)
        update_rounds = (1 if args.quick else 3) if big else (3 if args.quick else 7)
        t0 = time.perf_counter()
        rows, ratio, child_tps, (update, parts) = bench(H, rounds, evals, ratio_rounds, update_rounds)
        for name, (tps, aps) in rows.items():
            print(f"{H:>5} {name:>6} {tps:>11.0f} {aps:>15.2f}")
        f, nv, pl = rows["fast"], rows["naive"], rows["plain"]
        print(f"{H:>5} ratios: step fast/naive {f[0] / nv[0]:.2f}x, fast/plain {f[0] / pl[0]:.2f}x; "
              f"reward fast/naive {f[1] / nv[1]:.2f}x, fast/plain {f[1] / pl[1]:.2f}x")
        print(f"{H:>5} supernet step / child step (same arch) = {ratio:.3f}  (child {child_tps:.0f} tok/s)")
        bt, ft, pt = update["batched"], update["fast"], update["plain"]
        print(f"{H:>5} reward evaluation of one update (10 archs): batched {bt:.2f} s, fast one by one "
              f"{ft:.2f} s, plain one by one {pt:.2f} s; batched vs plain {pt / bt:.2f}x, vs fast {ft / bt:.2f}x")
        print(f"{H:>5} batched parts: " + ", ".join(f"{k} {v:.2f} s ({v / sum(parts.values()):.0%})"
                                                  for k, v in parts.items()))
        print(f"{H:>5} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
