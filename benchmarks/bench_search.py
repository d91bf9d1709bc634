"""Time of a paper-shaped ENAS search epoch on the real PTB files, as the search itself runs it.

An epoch of the paper's PTB search is 400 shared steps and 200 controller updates of 10 architectures
(Pham et al. 2018, sec. 3.1; official ptb_search.sh). This script times both kinds of unit inside
`Enas` (the `paper` search preset, sizes as given), in several configurations measured in one run:
the default (on a GPU: both bodies replayed as CUDA graphs, enas/cuda_graph.py, with the dense
update a graph holds); on a GPU the same run eagerly with the same dense update (`cuda_graphs=false
sparse_update=false`: the ratio is the graph's alone), eagerly with row-sparse updates (what
`cuda_graphs=false` alone runs), and with TF32 matmuls; and with bf16 autocast. Beside them the
peer-like baseline of bench_rnn.py (one nn.Linear per edge walked in Python, one forward per reward,
each reward read to the host) runs the same shapes. It prints ms per shared step and per update, the
projected epoch (400 steps + 200 updates) and 150-epoch search, the ratios, and the graphs' captures
and replays (a configuration that silently fell back to eager shows 0 replays).

    python benchmarks/bench_search.py --data-dir data/ptb [--device cuda] [--hidden 200 1000] [--quick]

Times are medians over rounds (a round: `--steps` shared steps, then `--updates` updates), the
configurations interleaved round by round; the device is synchronised only around a timed block.
With --check it first runs 20 steps of the graphed and the eager search without dropout from the same
seed and prints the largest difference of their parameters.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cnn import timed  # noqa: E402
from bench_rnn import DROP, PlainSupernet, make_step, reward  # noqa: E402

from enas.config import apply_overrides  # noqa: E402
from enas.strategies import preset  # noqa: E402
from enas.strategies.enas import Enas  # noqa: E402

STEPS_PER_EPOCH, UPDATES_PER_EPOCH, EPOCHS = 400, 200, 150  # the paper's PTB search (see above)


def units(search: Enas, phase: str, n: int) -> None:
    """n units of one phase, as Enas.run advances them (no logging, no checkpoint)."""
    e = search.engine
    if e.device.type == "cuda":  # a process-wide switch, set by each search when it starts
        torch.backends.cuda.matmul.allow_tf32 = search.cfg.tf32
    e.phase = phase
    for _ in range(n):
        e.step = 1  # never 0: no learning-rate reset, no window boundary bookkeeping
        if phase == "shared":
            e.train_step(e.next_arch(search.policy.sample))
        else:
            search.policy.update()


def make_search(args, hidden: int, overrides: list[str], tmp: Path) -> Enas:
    cfg = preset("search", "ptb", "paper")
    cfg = apply_overrides(cfg, [f"data_dir={args.data_dir}", f"device={args.device}", f"model.hidden_size={hidden}",
                                "log_every=1000000", "shared_steps=1000000", *overrides])
    return Enas.start(cfg, tmp / f"h{hidden}-{len(list(tmp.iterdir()))}", progress=False)


def plain_units(search: Enas, hidden: int):
    """The peer-like baseline on the search's device and batches: (shared step, one update of n)."""
    space, device, task = search.space, search.device, search.engine.task
    model = PlainSupernet(space, task.vocab_size, hidden, **DROP).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=search.cfg.shared.lr)
    x, y = (t.to(device) for t in task.next_reward_batch())
    rng = random.Random(0)
    step = make_step(model, opt, (x, y), lambda m, inp, a: m(inp, None, a))
    n = search.cfg.enas.controller.num_aggregate

    def shared():
        step(space.sample(rng=rng))

    def update():
        model.eval()
        [reward(model, lambda m, inp, a: m(inp, None, a), (x, y), space.sample(rng=rng)) for _ in range(n)]
        model.train()
    return shared, update


def bench(args, hidden: int, tmp: Path) -> dict:
    device = torch.device(args.device)
    configs = {"default": []}
    if device.type == "cuda":
        configs["eager"] = ["cuda_graphs=false", "sparse_update=false"]
        configs["eager sparse"] = ["cuda_graphs=false"]
        configs["tf32"] = ["tf32=true"]
    configs["bf16"] = ["bf16=true"]
    searches = {name: make_search(args, hidden, o, tmp) for name, o in configs.items()}
    runs = {name: (lambda s=s: units(s, "shared", args.steps), lambda s=s: units(s, "controller", args.updates))
            for name, s in searches.items()}
    plain_shared, plain_update = plain_units(searches["default"], hidden)
    runs["plain"] = (lambda: [plain_shared() for _ in range(args.steps)],
                     lambda: [plain_update() for _ in range(args.updates)])
    for shared, update in runs.values():  # warm-up: lazy init, the graphs' warm-up calls and capture
        for _ in range(2):
            shared()
            update()
    times = {name: ([], []) for name in runs}
    for _ in range(args.rounds):
        for name, (shared, update) in runs.items():
            times[name][0].append(timed(shared, device) / args.steps)
            times[name][1].append(timed(update, device) / args.updates)
    out = {}
    for name, (s, u) in times.items():
        step_s, update_s = statistics.median(s), statistics.median(u)
        epoch_s = STEPS_PER_EPOCH * step_s + UPDATES_PER_EPOCH * update_s
        out[name] = (step_s, update_s, epoch_s)
    losses = {name: _mean_loss(s) for name, s in searches.items()}
    graphs = {name: _graph_counts(s) for name, s in searches.items()}
    return out, losses, graphs


def _graph_counts(search: Enas) -> str:
    """captures/replays of the shared step and of the reward evaluation, e.g. "1/58 1/16"."""
    e = search.engine
    return " ".join(f"{g.captures}/{g.replayed}" for g in (e._captured_step, e._captured_reward))


def check_graphed_equals_eager(args, tmp: Path, steps: int = 20, tol: float = 1e-4) -> bool:
    """The graphed and the eager (dense) search, without dropout, from one seed over the same batches and
    architectures: their parameters after `steps` shared steps, as the largest |difference|."""
    no_dropout = ["model.dropout_e=0", "model.dropout_x=0", "model.dropout_h=0", "model.dropout_o=0",
                  "model.dropout_i=0"]
    runs = []
    for overrides in ([], ["cuda_graphs=false"]):  # each started (seeded) and run before the next starts
        # both with the dense update (a graphed step's own; a row-sparse run stores rows with decay pending)
        runs.append(make_search(args, 200, [*no_dropout, "sparse_update=false", *overrides], tmp))
        units(runs[-1], "shared", steps)
    a, b = (dict(s.engine.supernet.named_parameters()) for s in runs)
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    on_gpu = runs[0].engine.device.type == "cuda"  # on the CPU both run the same eager code
    ok = diff <= tol and (runs[0].engine._captured_step.replayed > 0 or not on_gpu)
    print(f"graphed == eager after {steps} shared steps (hidden 200, no dropout): largest |difference| of a "
          f"parameter {diff:.2e} (tolerance {tol:g}), {_graph_counts(runs[0])} captures/replays: "
          f"{'ok' if ok else 'FAILED'}")
    return ok


def _mean_loss(search: Enas) -> float:
    """The mean shared loss of the steps run (read once, at the end)."""
    w = search.engine._window
    return float(w["loss"] / w["ok"].clamp(min=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--hidden", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--quick", action="store_true", help="a smoke run: few units per round, one round")
    ap.add_argument("--steps", type=int, default=20, help="shared steps per round")
    ap.add_argument("--updates", type=int, default=5, help="controller updates per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="first check that the graphed search equals the eager one")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.updates, args.rounds = 2, 1, 1
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; paper search preset; batch 64 x BPTT 35, 12 nodes, "
          f"10 architectures per update; {args.rounds} rounds of {args.steps} steps + {args.updates} updates")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        if args.check:
            ok = check_graphed_equals_eager(args, Path(tmp))
        for hidden in args.hidden:
            times, losses, graphs = bench(args, hidden, Path(tmp))
            plain = times["plain"]
            print(f"\nhidden {hidden}")
            print(f"{'':12s} {'step ms':>9s} {'update ms':>10s} {'epoch s':>9s} {'150 epochs h':>13s} "
                  f"{'step x':>7s} {'update x':>9s} {'epoch x':>8s}  {'loss':>6s}  graphs")
            for cfg_name, (step_s, update_s, epoch_s) in times.items():
                loss = f"{losses[cfg_name]:.3f}" if cfg_name in losses else "-"
                print(f"{cfg_name:12s} {step_s * 1e3:9.2f} {update_s * 1e3:10.1f} {epoch_s:9.1f} "
                      f"{epoch_s * EPOCHS / 3600:13.2f} {plain[0] / step_s:7.2f} {plain[1] / update_s:9.2f} "
                      f"{plain[2] / epoch_s:8.2f}  {loss:>6s}  {graphs.get(cfg_name, '-')}")
    print("\nx = the plain baseline's time / this configuration's (higher is faster); epoch = 400 shared "
          "steps + 200 updates, end-of-epoch validation not included; loss = the mean shared loss of the "
          "steps timed; graphs = captures/replays of the shared step and of the reward evaluation")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
