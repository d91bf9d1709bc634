"""Does a preset learn? The training-loss curve of a search's shared weights (or of a final
training) on the real data, printed every `--every` steps, with the reference it should beat.

    python benchmarks/learning_curve.py --data-dir ../shared/data/ptb --set model.hidden_size=200
    python benchmarks/learning_curve.py --data-dir ../shared/data/ptb                   # hidden 1000
    python benchmarks/learning_curve.py --data-dir ../shared/data/ptb --final --arch enas_ptb --steps 200
    python benchmarks/learning_curve.py --space enas_micro --task fashion_mnist \
        --data-dir ../shared/data/fashion-mnist --steps 300 --every 30

A search runs exactly as `enas search` does (architectures sampled from the controller at its
initial weights, the preset's optimiser, dropout and clipping), for `--steps` shared steps and no
controller update; `--final` trains `--arch` from scratch with the final-training preset. Uniform
guessing is ln(vocabulary) = 9.21 on PTB and ln(10) = 2.30 on the image tasks. For PTB at hidden
200 ENAS-pytorch (its defaults: lr 20, clip 0.25, batch 64, BPTT 35) logs a shared loss of
9.89 8.36 7.78 7.62 7.55 7.37 7.48 7.29 7.41 7.18 at steps 10, 20, ..., 100.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

from enas.cli import read_arch
from enas.config import apply_overrides
from enas.strategies import preset, start_search
from enas.train import FinalTraining

PEER_PTB_H200 = [9.89, 8.36, 7.78, 7.62, 7.55, 7.37, 7.48, 7.29, 7.41, 7.18]  # steps 10..100


def search_curve(args) -> list[tuple[int, float]]:
    cfg = preset("search", args.task, args.preset, args.space)
    cfg = apply_overrides(cfg, [f"data_dir={args.data_dir}", f"log_every={args.every}",
                                f"shared_steps={args.steps}", "epochs=1", "controller.steps=0",
                                f"seed={args.seed}", *args.set])
    with tempfile.TemporaryDirectory() as run_dir:
        search = start_search(cfg, run_dir, progress=False)
        search.run(max_units=args.steps)
        return search.engine.shared_losses


def final_curve(args) -> list[tuple[int, float]]:
    arch = read_arch(args.arch, args.space)[0]
    cfg = preset("train", args.task, args.preset, arch.space.name)
    cfg = apply_overrides(cfg, [f"data_dir={args.data_dir}", f"log_every={args.every}",
                                f"max_steps={args.steps}", "epochs=1", f"seed={args.seed}", *args.set])
    with tempfile.TemporaryDirectory() as run_dir:
        run = FinalTraining.start(arch, cfg, run_dir, progress=False)
        run.run(max_units=args.steps)
        return run.train_losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="enas_rnn")
    p.add_argument("--task", default="ptb")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--preset", default="paper")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--final", action="store_true", help="a final training of --arch instead of a search")
    p.add_argument("--arch", default="enas_ptb", help="zoo name, arch.json or arc string (with --final)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    curve = final_curve(args) if args.final else search_curve(args)
    seconds = time.perf_counter() - t0
    what = f"final training of {args.arch}" if args.final else f"{args.space} search, shared weights"
    print(f"{what} on {args.task}, preset {args.preset} {' '.join(args.set)}: {len(curve) * args.every} "
          f"steps in {seconds:.0f} s ({torch.get_num_threads()} threads)")
    print("step  " + " ".join(f"{s:>6d}" for s, _ in curve))
    print("loss  " + " ".join(f"{v:6.2f}" for _, v in curve))
    if args.task == "ptb" and not args.final and args.every == 10:
        print("peer  " + " ".join(f"{v:6.2f}" for v in PEER_PTB_H200[:len(curve)]) + "   (ENAS-pytorch, hidden 200)")
    uniform = math.log(10000 if args.task == "ptb" else 10)
    print(f"uniform guessing: {uniform:.2f}")


if __name__ == "__main__":
    main()
