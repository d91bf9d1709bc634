"""The ENAS recurrent cell (Pham et al. 2018, section 2.1): a DAG of N nodes.

Node 0 reads x_t and h_{t-1}; node i >= 1 reads one earlier node. Every node applies one of four
activations. Arc format of the official ENAS PTB code: `f0 p1 f1 p2 f2 ... p_{N-1} f_{N-1}`, so the
published cell `0 0 0 1 1 2 1 2 0 2 0 5 1 1 0 6 1 8 1 8 1 8 1` has N = 12.

Options (each defaults to the paper):
- first_act: "sampled" (paper, official ENAS) or "tanh" (google-research enas_lm fixes node 0 to
  tanh; the arc then starts with p1).
- output: "loose_ends" (paper: average of the nodes no other node reads) or "all" (enas_lm: average
  of all nodes).
"""
from __future__ import annotations

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from ..errors import ArchError
from . import drawing
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Predecessor

ACTIVATIONS = ("tanh", "relu", "identity", "sigmoid")
MAX_NODES = 64  # paper: 12
ACT_COLORS = {"tanh": "#cfe2f3", "relu": "#d9ead3", "identity": "#eeeeee", "sigmoid": "#fce5cd"}


# --- presets (Penn Treebank, the one task of this space, whose name each takes as `task`) ---------

def _search_paper(task: str) -> SearchPreset:
    """ENAS PTB search. Values stated in the paper (Pham et al. 2018, sec. 3.1) are taken from it;
    where it is silent, from the official search script (melodyguan/enas scripts/ptb_search.sh,
    "OFF" below) or, for the shared hidden size and the hidden-norm clip, from carpedm20/ENAS-pytorch
    (config.py, models/shared_rnn.py; "PT"). The shared lr is OFF's, not the paper's: OFF's dropout
    belongs to SGD lr 0.25 on a loss summed over the 35 steps, which is lr 8.75 on our per-token mean
    (once clipped, OFF steps 0.25 x 10 = 2.5 long, ours 8.75 x 0.25 = 2.2). With the paper's lr 20
    (--set shared.lr=20, as PT) the shared loss at hidden 1000 stopped falling after about 250 of an
    epoch's 400 steps; at lr 8.75 it keeps falling, at hidden 200 too (README, Results). OFF's other
    values (clip 10, batch 20, hidden 720) can be set with --set."""
    return SearchPreset(
        epochs=150,                          # paper: 150 epochs
        batch_size=64, bptt=35,              # paper: minibatches of 64, BPTT truncated at 35
        eval_batch_size=64,                  # PT: a 64 x 35 validation batch per reward
        shared_steps=400,                    # paper: ω trained for about 400 steps per epoch
        derive_samples=100,                  # PT derive_num_sample
        model=ModelConfig(
            hidden_size=1000,                # PT shared_hid = shared_embed = 1000
            dropout_e=0.25, dropout_x=0.75,  # OFF keep probabilities e 0.75, x 0.25,
            dropout_h=0.25, dropout_o=0.75,  #     h 0.75, o 0.25 (one mask per batch)
            max_hidden_norm=25.0,            # PT RNN.forward max_norm
            init_range=0.04),                # OFF _build_params: U(-0.04, 0.04) for H > 400
        shared=OptimConfig(lr=8.75, grad_clip=0.25,         # OFF lr 0.25 x 35 (docstring); paper: clip 0.25
                           lr_decay=0.96, lr_decay_start=15,  # paper: x0.96 per epoch from epoch 15
                           weight_decay=1e-7),               # paper: l2 1e-7
        controller=ControllerConfig(
            hidden_size=100,                 # paper / OFF main.py: one LSTM layer of 100 units
            lr=3.5e-4, adam_beta1=0.0,       # paper: Adam lr 0.00035; OFF utils.get_train_ops: beta1 = 0
            temperature=5.0, tanh_constant=2.5,  # paper
            entropy_weight=1e-4,             # paper: sample entropy added to the reward, weight 1e-4
            baseline_decay=0.99,             # OFF main.py controller_bl_dec
            num_aggregate=10,                # OFF --controller_num_aggregate=10
            steps=200,                       # paper: 2000 sampled architectures = 200 updates of 10
            reward_c=80.0,                   # OFF / PT: reward = 80 / valid_ppl
            index_distance_penalty=1 / 6,    # OFF ptb_enas_controller.py (and enas_lm): -(i - j)^2 / 6
            scale_index_input=True,          #   and the chosen node's state / (0.1 + (i - j)) as input
            anchors="before",                #   where a node's anchor is its first step (`all_h`)
            init_range=0.1),                 # paper / OFF: θ ~ U(-0.1, 0.1)
    )


def _search_tiny(task: str) -> SearchPreset:
    """Seconds on two CPU cores: the same loop at toy sizes."""
    return SearchPreset(
        space_options={"num_nodes": 6},
        epochs=2, batch_size=16, bptt=20, eval_batch_size=16, eval_max_batches=20, shared_steps=15,
        derive_samples=8, analyze_samples=100, analyze_batches=2, log_every=5,
        nas_updates=3, child_max_steps=30,  # full NAS / random from scratch: 6 children of 30 steps
        # Over so few steps lr 5 learns faster than the paper's 20 at hidden 48 (shared loss after
        # 150 steps: 6.80 against 7.06); the hidden-norm clip is 25 * sqrt(48 / 1000) ~ 5.
        model=ModelConfig(hidden_size=48, dropout_e=0.1, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25,
                          max_hidden_norm=5.0, init_range=0.1),
        shared=OptimConfig(lr=5.0, grad_clip=0.25),
        controller=ControllerConfig(hidden_size=32, adam_beta1=0.0, steps=4, num_aggregate=2, anchors="before",
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns for real on one machine: 11 minutes on two CPU cores.
    The paper's loop and optimiser (lr 20, clip 0.25, batch 64, BPTT 35, 10 architectures per
    controller update) at hidden 200 with 8-node cells; dropout halved for a run this short.

    The controller's Adam epsilon is enas_lm's (the authors' later PTB code, controller.py
    _build_train_op: TF's default 1e-8), not the official ENAS code's 1e-3. At this size the rewards
    are 80 / ppl with ppl near 1,000, and the gradients' root mean squares were 2e-6 to 2e-4 per
    weight, far under 1e-3, so Adam's steps shrank by as much: after the run's 120 updates no weight
    had moved more than 0.007, the entropy stayed at 17.313, 96% of the samples were those of the
    initial weights, and the samples beat uniform ones in 47-48% of pairs. With 1e-8 the entropy
    fell from the fifth epoch on and the samples beat uniform ones in 64.5% and then 66.2% of pairs
    (README, "Does the controller learn its reward?"; benchmarks/controller_progress.py).

    50 controller updates per epoch, not 20: the paper trains the shared weights for about 400
    steps and then the controller for 2,000 architectures, 200 updates of 10, per epoch (sec. 3.1;
    `_search_paper`): one update per two shared steps, which at 100 shared steps is 50. With 20
    the controller had 120 updates in all, its entropy moved only from the fifth epoch, and its
    samples beat uniform ones in 60-66% of pairs at the end; with 50 the entropy fell from the
    third epoch, the mean reward rose every epoch, and they beat uniform ones in 90% of pairs."""
    return SearchPreset(
        space_options={"num_nodes": 8},
        epochs=6, batch_size=64, bptt=35, eval_batch_size=64, eval_max_batches=10,
        shared_steps=100, derive_samples=100, log_every=20,
        analyze_samples=200, analyze_batches=4,    # `enas analyze`: minutes, not the paper's hour
        model=ModelConfig(hidden_size=200, dropout_e=0.1, dropout_x=0.5, dropout_h=0.25, dropout_o=0.5,
                          max_hidden_norm=11.0,    # 25 * sqrt(200 / 1000): PT's clip scaled to the size
                          init_range=0.1),         # OFF _build_params: 0.1 for hidden <= 300
        shared=OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=1e-7),
        controller=ControllerConfig(hidden_size=100, lr=3.5e-4, adam_beta1=0.0, temperature=5.0,
                                    tanh_constant=2.5, entropy_weight=1e-4, baseline_decay=0.99,
                                    num_aggregate=10, steps=50, index_distance_penalty=1 / 6,
                                    scale_index_input=True, anchors="before", init_range=0.1,
                                    adam_eps=1e-8),  # enas_lm (docstring)
    )


def _train_small(task: str) -> TrainConfig:
    """Final training on one machine: 2,400 steps of 64 x 35 tokens (about 5.8 passes over the
    training text, 40 minutes on two CPU cores) at hidden 200; the paper's lr 20 and clip 0.25,
    then x0.7 per 200-step epoch from the sixth; light dropout, since so few passes underfit."""
    return TrainConfig(
        epochs=12, max_steps=200, batch_size=64, bptt=35, eval_batch_size=64, log_every=50,
        model=ModelConfig(hidden_size=200, dropout_e=0.05, dropout_x=0.25, dropout_h=0.1, dropout_o=0.25,
                          max_hidden_norm=11.0, init_range=0.1),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, lr_decay=0.7, lr_decay_start=6, weight_decay=5e-7),
    )


def _train_paper(task: str) -> TrainConfig:
    """Final training of a PTB cell, official melodyguan/enas scripts/ptb_final.sh.
    OFF applies lr 20 to a loss summed over the 35 steps; we keep the per-token mean (as enas_lm and
    PT do), which with clip 0.25 takes steps of the same length once gradients are clipped."""
    return TrainConfig(
        epochs=2000,                         # OFF --num_epochs=2000
        batch_size=64, bptt=35,              # OFF --batch_size=64 --child_bptt_steps=35
        eval_batch_size=10,
        model=ModelConfig(
            hidden_size=748,                 # OFF --child_lstm_hidden_size=748
            dropout_e=0.21, dropout_x=0.75,  # OFF keep e 0.79, x 0.25,
            dropout_h=0.25, dropout_o=0.76,  #     h 0.75, o 0.24
            init_range=0.04),                # OFF: U(-0.04, 0.04) for H > 400
        optim=OptimConfig(lr=20.0, grad_clip=0.25,               # OFF --child_lr=20 --child_grad_bound=0.25
                          lr_decay=0.9991, lr_decay_start=14,      # OFF --child_lr_dec_rate/_start
                          lr_min=0.001, weight_decay=5e-7),        # OFF --child_lr_dec_min, --child_l2_reg
    )


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 100 steps of the paper's lr 20 and clip 0.25 at hidden 48 (the enas_ptb cell: valid
    perplexity ~890 after 90 steps, against 10,000 for uniform guessing)."""
    return TrainConfig(
        epochs=1, batch_size=16, bptt=20, max_steps=100, eval_max_batches=20, log_every=10,
        model=ModelConfig(hidden_size=48, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25, max_hidden_norm=5.0,
                          init_range=0.1),
        optim=OptimConfig(lr=20.0, grad_clip=0.25),
    )





@register
class EnasRNNSpace(SearchSpace):
    name = "enas_rnn"
    tasks = ("ptb",)
    models = "enas.nn.rnn_lm"
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    defaults = {"num_nodes": 12, "first_act": "sampled", "output": "loose_ends"}

    def build_decisions(self):
        n, first = self.options["num_nodes"], self.options["first_act"]
        whole_option(self.name, "num_nodes", n, 1, MAX_NODES)
        if first not in ("sampled", "tanh"):
            raise ArchError(f"enas_rnn: first_act must be 'sampled' or 'tanh', got {first!r}")
        if self.options["output"] not in ("loose_ends", "all"):
            raise ArchError(f"enas_rnn: output must be 'loose_ends' or 'all', got {self.options['output']!r}")
        decisions = []
        if first == "sampled":
            decisions.append(Choice("node0.act", 4, ACTIVATIONS, anchor=True))
        else:
            self.initial_anchors = 1  # node 0 exists (tanh) before any decision
        for i in range(1, n):
            decisions.append(Predecessor(f"node{i}.prev", i))
            decisions.append(Choice(f"node{i}.act", 4, ACTIVATIONS, anchor=True))
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        # sampled first activation: 1 + 2(N-1) tokens; fixed tanh: 2(N-1)
        extra = 1 if self.options["first_act"] == "sampled" else 2
        return {"num_nodes": (num_tokens + extra) // 2} if num_tokens >= 1 else {}

    def cell(self, tokens) -> tuple[list[int], list[int]]:
        """(prev, act) per node; prev[0] = -1 stands for (x_t, h_{t-1})."""
        tokens = list(tokens)
        if self.options["first_act"] == "tanh":
            tokens = [0] + tokens
        prev = [-1] + tokens[1::2]
        act = tokens[0::2]
        return prev, act

    def loose_ends(self, tokens) -> list[int]:
        """The nodes averaged into the cell output."""
        prev, _ = self.cell(tokens)
        if self.options["output"] == "all":
            return list(range(len(prev)))
        used = set(prev[1:])
        return [i for i in range(len(prev)) if i not in used]

    # --- drawing -----------------------------------------------------------------------------
    def text(self, tokens) -> str:
        """One line per node, `node i = act(what it reads)`, and the output average."""
        prev, act = self.cell(tokens)
        outs = self.loose_ends(tokens)
        width = len(f"node {len(prev) - 1}")
        lines = [f"{self.name} cell, {len(prev)} nodes: {' '.join(map(str, tokens))}"]
        for i, (p, a) in enumerate(zip(prev, act)):
            reads = "x_t, h_{t-1}" if p < 0 else f"node {p}"
            lines.append(f"  {f'node {i}':<{width}} = {ACTIVATIONS[a]}({reads})")
        how = "mean of all nodes" if self.options["output"] == "all" else "mean of loose ends"
        lines.append(f"  {'h_t':<{width}} = mean({', '.join(f'node {i}' for i in outs)})   [{how}]")
        return "\n".join(lines)

    def figure(self, tokens):
        """The cell left to right (`cell_figure`); output="all" says "avg of all nodes" in the h_t box
        instead of an edge from every node."""
        prev, act = self.cell(tokens)
        return cell_figure(f"{self.name}: {' '.join(map(str, tokens))}", prev, [ACTIVATIONS[a] for a in act],
                           self.loose_ends(tokens), self.options["output"] == "all")


def cell_figure(caption: str, prev: list[int], acts: list[str], outs: list[int], all_nodes: bool = False):
    """A recurrent cell left to right: x_t and h_{t-1} feed node 0, each node sits one column right of
    the node it reads (prev[i]; prev[0] is ignored), and dashed edges carry the nodes `outs` into h_t
    (all_nodes: none drawn, the h_t box says "avg of all nodes")."""
    depth, y = _layout(prev)
    out_col = max(depth) + 1
    lo, hi = min(y + [-0.5]), max(y + [0.5])
    dx, dy = 1.45, 0.85  # inches per column / per unit of height
    fig, ax = drawing.inch_axes(max(dx * (out_col + 1.2), 7.0), dy * (hi - lo + 1.2))

    def at(col: float, height: float) -> tuple[float, float]:  # layout units -> inches
        return (col + 0.6) * dx, (height - lo + 0.6) * dy

    def box(col, height, label, color):
        return drawing.box(ax, *at(col, height), label, color)

    x_t = box(0, 0.5, r"$x_t$", "white")
    h_prev = box(0, -0.5, r"$h_{t-1}$", "white")
    nodes = [box(depth[i], y[i], f"node {i}\n{a}", ACT_COLORS[a]) for i, a in enumerate(acts)]
    h_y = sum(y[i] for i in outs) / len(outs)
    h_t = box(out_col, h_y, "$h_t$\n(avg of\nall nodes)" if all_nodes else "$h_t$\n(avg)", "white")
    drawing.arrow(ax, x_t, nodes[0])
    drawing.arrow(ax, h_prev, nodes[0])
    for i in range(1, len(prev)):
        drawing.arrow(ax, nodes[prev[i]], nodes[i])
    centres = [at(depth[j], y[j]) for j in range(len(prev))]
    for i in ([] if all_nodes else outs):  # an edge from every node would bury the cell
        rad = drawing.detour(centres[i], at(out_col, h_y), [c for j, c in enumerate(centres) if j != i],
                             (0.1 * dy, (hi - lo + 1.1) * dy))
        drawing.arrow(ax, nodes[i], h_t, color=drawing.LOOSE_COLOR, linestyle=drawing.LOOSE_STYLE, lw=1.1,
                      connectionstyle=f"arc3,rad={rad}")
    drawing.caption(fig, caption)
    entries = [(a, dict(fc=c)) for a, c in ACT_COLORS.items()] + [("reads", dict(color=drawing.EDGE_COLOR))]
    if not all_nodes:
        entries.append(("averaged into $h_t$", dict(color=drawing.LOOSE_COLOR, ls=drawing.LOOSE_STYLE)))
    drawing.legend(fig, entries)
    return fig


def _layout(prev: list[int]) -> tuple[list[int], list[float]]:
    """Column (depth) and height of each node: a node sits one column right of the node it reads, as
    level with it as overlaps allow, so chains are straight lines and branches fan out."""
    depth = [1] * len(prev)
    for i in range(1, len(prev)):
        depth[i] = depth[prev[i]] + 1
    y = [0.0] * len(prev)
    for col in range(2, max(depth) + 1):
        nodes = [i for i in range(len(prev)) if depth[i] == col]
        want = {}
        for p in sorted({prev[i] for i in nodes}, key=lambda p: y[p]):
            kids = [i for i in nodes if prev[i] == p]
            for k, i in enumerate(kids):  # siblings spread around their parent's height
                want[i] = y[p] + (k - (len(kids) - 1) / 2)
        placed: list[float] = []
        for i in sorted(nodes, key=lambda i: want[i]):  # push apart to a gap of at least 1
            placed.append(want[i] if not placed or want[i] >= placed[-1] + 1 else placed[-1] + 1)
        shift = sum(want.values()) / len(nodes) - sum(placed) / len(nodes)
        for i, h in zip(sorted(nodes, key=lambda i: want[i]), placed):
            y[i] = h + shift
    return depth, y
