"""Speed of the ENAS image supernets on this machine, as ratios measured in one run.

For each image space at the official search sizes (melodyguan/enas scripts/cifar10_macro_search.sh:
12 layers, 36 filters, batch 128; scripts/cifar10_micro_search.sh: child_num_layers 6 (2 cells per
stage + 2 reductions), 20 filters, 5 blocks, batch 160, auxiliary head; nas_cnn: 6 layers with
predicted strides, batch 64), on synthetic CIFAR-shaped data (3 x 32 x 32, 10 classes):
- shared step: forward + backward + SGD of the supernet on a freshly sampled architecture, images/s;
- child step: the same step of a standalone search-style child of the same architecture (built and
  stepped once outside the timed region), and the ratio supernet step / child step (goal <= 1.10).
Supernet and child steps alternate on the same architectures (which one goes first alternates too),
so both see the same machine load.

Usage:
    python benchmarks/bench_cnn.py [--quick] [--spaces enas_macro enas_micro] [--batch-size N]
                                   [--device cuda] [--bf16] [--channels-last] [--threads N]
"""
from __future__ import annotations

import argparse
import contextlib
import random
import time

import torch
import torch.nn.functional as F

import enas
from enas.nn.micro import AUX_WEIGHT

# space -> (space options, network kwargs, official batch size)
SEARCH = {
    "enas_macro": ({"num_layers": 12}, dict(channels=36), 128),
    "enas_micro": ({"num_blocks": 5}, dict(channels=20, num_layers=2, aux_head=True), 160),
    # Zoph & Le 2017 sec. 4.1: per-layer filter sizes and counts, anchor-point skips; 6 layers (where the
    # paper's depth schedule starts) with predicted strides. The paper gives no batch size: 64 here.
    "nas_cnn": ({"num_layers": 6, "predict_stride": True}, dict(image_size=32), 64),
}
# official src/utils.py get_train_ops: momentum 0.9 with Nesterov; lr_max 0.05 in both search scripts
LR, MOMENTUM = 0.05, 0.9


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, opt, x, y, arch, autocast):
    """One training step; `arch` is None for a child."""

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(x) if arch is None else model(x, arch)
            if isinstance(out, tuple):  # (logits, aux_logits): official loss + 0.4 * aux loss
                loss = F.cross_entropy(out[0], y) + AUX_WEIGHT * F.cross_entropy(out[1], y)
            else:
                loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
    return step


def timed(fn, device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def bench_space(name, args, device):
    options, kw, batch = SEARCH[name]
    batch = args.batch_size or batch
    space = enas.get_space(name, **options)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if args.bf16:
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    torch.manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    net = enas.build_supernet(space, **kw).to(device, memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True)
    rng = random.Random(0)

    super_times, child_times = [], []
    for i in range(args.warmup + args.steps):
        arch = space.sample(rng=rng)  # a fresh architecture per step
        child = enas.build_child(space, arch, **kw).to(device, memory_format=fmt).train()
        copt = torch.optim.SGD(child.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True)
        super_step = make_step(net, opt, x, y, arch, autocast)
        child_step = make_step(child, copt, x, y, None, autocast)
        child_step()  # untimed: the child's first step allocates its momentum buffers
        if i % 2:  # alternate the order, so neither side always runs first
            t_child, t_super = timed(child_step, device), timed(super_step, device)
        else:
            t_super, t_child = timed(super_step, device), timed(child_step, device)
        if i >= args.warmup:
            super_times.append(t_super)
            child_times.append(t_child)
    n_super = sum(p.numel() for p in net.parameters())
    s, c = sum(super_times), sum(child_times)
    print(f"{name}: batch {batch}, {kw}, supernet {n_super / 1e6:.2f}M params, {len(super_times)} steps")
    n = len(super_times)
    print(f"  shared step (fresh arch)   {batch * n / s:9.1f} images/s   {1e3 * s / n:8.1f} ms/step")
    print(f"  standalone child step      {batch * n / c:9.1f} images/s   {1e3 * c / n:8.1f} ms/step")
    print(f"  ratio supernet / child     {s / c:9.3f}   (goal <= 1.10)")
    return s / c


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 warm-up step and 3 timed steps per space")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--spaces", nargs="+", default=list(SEARCH), choices=list(SEARCH))
    p.add_argument("--batch-size", type=int, default=None, help="default: the official search batch")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action="store_true", help="autocast to bfloat16")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    if args.quick:
        args.steps, args.warmup = 3, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"torch {torch.__version__}, device {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"threads {torch.get_num_threads()}, bf16 {args.bf16}, channels_last {args.channels_last}")
    for name in args.spaces:
        bench_space(name, args, device)


if __name__ == "__main__":
    main()
