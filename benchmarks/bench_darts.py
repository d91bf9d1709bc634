"""DARTS's relaxed supernets against plain implementations written the way the official code writes them
(quark0/darts cnn/model_search.py: a Python list of op modules per edge, every op run and summed per
edge; rnn/model_search.py: one highway update per op and predecessor), same shapes, same CPU, one run.

For each space it prints the time of one weight step (forward and backward through the mixture), of
one first-order alpha step and of one second-order (unrolled) alpha step of ours, the plain
implementation's weight step, and the ratio plain / ours (higher: ours is faster). Rounds interleave
the two; times are medians.

    python benchmarks/bench_darts.py [--rounds 3] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import enas  # noqa: E402
from enas.nn import build_supernet  # noqa: E402
from enas.nn.cnn_ops import ReLUConvBN, ReLUFactorizedReduction, bn  # noqa: E402
from enas.nn.darts_cnn import darts_op  # noqa: E402
from enas.nn.darts_rnn import ACTIVATIONS  # noqa: E402


# --- the plain convolutional supernet: a list of ops per edge, each run and summed -------------------
class PlainMixedOp(nn.Module):
    def __init__(self, space, c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList(darts_op(name, c, stride, False, True, True) for name in space.op_names)

    def forward(self, x, weights):  # weights [8]: none first
        return sum(w * op(x) for w, op in zip(weights[1:], self.ops))


class PlainCell(nn.Module):
    def __init__(self, space, c_pp, c_p, c, reduce, reduce_prev):
        super().__init__()
        self.pre0 = ReLUFactorizedReduction(c_pp, c, True, False) if reduce_prev else ReLUConvBN(c_pp, c, 1, True,
                                                                                                   affine=False)
        self.pre1 = ReLUConvBN(c_p, c, 1, True, affine=False)
        self.nodes, self.reduce = space.blocks, reduce
        self.ops = nn.ModuleList(PlainMixedOp(space, c, 2 if reduce and j < 2 else 1)
                                 for i in range(self.nodes) for j in range(2 + i))

    def forward(self, s0, s1, weights):
        states, offset = [self.pre0(s0), self.pre1(s1)], 0
        for _ in range(self.nodes):
            s = sum(self.ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[2:], dim=1)


class PlainNetwork(nn.Module):
    def __init__(self, space, c: int, layers: int, in_channels: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 3 * c, 3, padding=1, bias=False), bn(3 * c, True))
        c_pp, c_p, cur, reduce_prev, cells = 3 * c, 3 * c, c, False, []
        for i in range(layers):
            reduce = i in (layers // 3, 2 * layers // 3)
            cur *= 2 if reduce else 1
            cells.append(PlainCell(space, c_pp, c_p, cur, reduce, reduce_prev))
            reduce_prev, c_pp, c_p = reduce, c_p, space.blocks * cur
        self.cells, self.classifier = nn.ModuleList(cells), nn.Linear(c_p, classes)

    def forward(self, x, weights):  # weights [2, E, 8]
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[int(cell.reduce)])
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


# --- the plain recurrent cell: one highway update per op and predecessor ---------------------------------
def plain_rnn_recur(net, x, hidden, weights, mask_h):
    """The supernet's recurrence written as rnn/model_search.py DARTSCellSearch.cell writes it."""
    H, N = net.hidden_size, net.num_nodes
    outs, h = [], hidden
    for t in range(x.shape[0]):
        z = torch.cat([x[t], h * mask_h], -1) @ torch.cat([net.w_x, net.w_h0])
        states = net._norm(h + torch.sigmoid(z[:, :H]) * (torch.tanh(z[:, H:]) - h)).unsqueeze(0)
        offset = 0
        for i in range(1, N + 1):
            ch = (states * mask_h).view(-1, H).mm(net.w_nodes[i - 1]).view(i, -1, 2 * H)
            c, hh = torch.sigmoid(ch[..., :H]), ch[..., H:]
            s = torch.zeros_like(states[0])
            for k, f in enumerate(ACTIVATIONS):
                unweighted = states + c * (f(hh) - states)
                s = s + torch.sum(weights[offset:offset + i, k + 1].unsqueeze(-1).unsqueeze(-1) * unweighted, dim=0)
            states = torch.cat([states, net._norm(s).unsqueeze(0)], 0)
            offset += i
        h = states[1:].mean(0)
        outs.append(h)
    return torch.stack(outs), h


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_cnn(args) -> dict:
    space = enas.get_space("darts_cnn", num_nodes=args.nodes)
    kw = dict(in_channels=1, num_classes=10, channels=args.channels, num_layers=args.layers, image_size=28)
    torch.manual_seed(0)
    ours, plain = build_supernet(space, **kw), PlainNetwork(space, args.channels, args.layers, 1, 10)
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    alpha = (1e-3 * torch.randn(space.mixture_shape)).requires_grad_()

    def weight_step(net):
        def run():
            F.cross_entropy(net(x, F.softmax(alpha, -1).detach()), y).backward()
        return run

    def alpha_step():
        torch.autograd.grad(F.cross_entropy(ours(x, F.softmax(alpha, -1)), y), alpha)

    return _rounds(args, {"ours": weight_step(ours), "plain": weight_step(plain), "alpha": alpha_step,
                          "unrolled": _unrolled(ours, alpha, lambda m: F.cross_entropy(m(x, F.softmax(alpha, -1)), y))})


def bench_rnn(args) -> dict:
    space = enas.get_space("darts_rnn", num_nodes=8)
    torch.manual_seed(0)
    net = build_supernet(space, vocab_size=10000, hidden_size=args.hidden)
    tokens = torch.randint(0, 10000, (args.bptt + 1, args.rnn_batch))
    x, y = tokens[:-1], tokens[1:]
    alpha = (1e-3 * torch.randn(space.mixture_shape)).requires_grad_()
    mask_h = torch.ones(args.rnn_batch, args.hidden)
    hidden = net.init_hidden(args.rnn_batch)

    def loss(recur, weights):
        out, _ = recur(net, F.embedding(x, net.embedding.weight), hidden, weights, mask_h)
        logits = F.linear(out, net.embedding.weight, net.decoder_bias)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    ours = lambda n, xe, h, w, m: n._recur(xe, h, w, m)  # noqa: E731
    return _rounds(args, {
        "ours": lambda: loss(ours, F.softmax(alpha, -1).detach()).backward(),
        "plain": lambda: loss(plain_rnn_recur, F.softmax(alpha, -1).detach()).backward(),
        "alpha": lambda: torch.autograd.grad(loss(ours, F.softmax(alpha, -1)), alpha),
        "unrolled": _unrolled(net, alpha, lambda m: loss(lambda n, *a: ours(n, *a), F.softmax(alpha, -1)))})


def _unrolled(net, alpha, loss_of):
    """The second-order step's work: two more gradients of the training loss and one of the
    validation loss at the unrolled weights (here all on one batch: the shapes are what costs)."""
    def run():
        w = list(net.parameters())
        torch.autograd.grad(loss_of(net), w)
        torch.autograd.grad(loss_of(net), [alpha, *w], allow_unused=True)
        torch.autograd.grad(loss_of(net), alpha)
        torch.autograd.grad(loss_of(net), alpha)
    return run


def _rounds(args, runs: dict) -> dict:
    for run in runs.values():  # warm-up
        run()
    times = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            times[name].append(timed(run))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round at the smallest sizes")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--rnn-batch", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=35)
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.layers, args.batch, args.hidden, args.bptt = 1, 3, 8, 64, 10
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    for name, bench, shape in (
            ("darts_cnn", bench_cnn, f"{args.layers} cells of {args.nodes} nodes, {args.channels} channels, "
                                     f"batch {args.batch} of 28x28"),
            ("darts_rnn", bench_rnn, f"8 nodes, hidden {args.hidden}, batch {args.rnn_batch} x BPTT {args.bptt}")):
        t = bench(args)
        print(f"{name} ({shape}): weight step {t['ours'] * 1e3:.0f} ms (plain {t['plain'] * 1e3:.0f} ms, "
              f"x{t['plain'] / t['ours']:.2f}); alpha step, first order {t['alpha'] * 1e3:.0f} ms, "
              f"second order +{t['unrolled'] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
