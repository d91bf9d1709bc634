"""The recurrent-cell space of NAS (Zoph & Le 2017, sec. 3.2 "Generate recurrent cell architectures",
Figure 5 and the appendix): a cell is a full binary tree over `base` leaves.

Tree. Leaves 0 .. base-1, then each level's nodes, the root last: base 8 has leaves 0-7, nodes 8-11
(node 8 + k combines leaves 2k, 2k+1), 12-13 and root 14; base 4 has leaves 0-3, nodes 4-5, root 6;
base 2 leaves 0-1 and root 2. Every node (leaves included) is given a combination {add, elem_mult}
and an activation {identity, tanh, sigmoid, relu}:
- leaf k:  a_k = act_k(W_k x_t  (+ or *)  U_k h_{t-1}), the only weights of the cell;
- inner j: a_j = act_j(a_l (+ or *) a_r) over its two children, no weights.
Memory. "Cell inject" is a combination and an activation that merge c_{t-1} into one node's output,
a_j <- act_inject(a_j (+ or *) c_{t-1}), used downstream instead of a_j (the inject node's output
itself when it is the root). "Cell indices" say which node's pre-activation (its combination, before
its activation and before any inject) becomes c_t, and which node receives c_{t-1}. h_t is the
root's output.

Decisions, in the order of the paper's Figure 5 (tree index 0, 1, 2, ..., cell inject, cell
indices): per node in index order its combination then its activation, then the inject's
combination and activation, then the two cell indices, the node whose pre-activation becomes c_t
first and the node c_{t-1} is injected into second. 4 * base + 2 numbers in all; the LSTM of the
paper's appendix (enas.zoo "lstm") and TensorFlow's NASCell ("nascell") are both in the base-8 space.

Options:
- `base` 2, 4 or 8 (default 8, the paper's, sec. 4.2).
- `leaf_bias` (default false): a bias b_k on each leaf's recurrent branch, U_k h_{t-1} + b_k. The
  paper writes its leaves without one (sec. 3.2: a_0 = tanh(W_1 x_t + W_2 h_{t-1}), a_1 =
  ReLU((W_3 x_t) (.) (W_4 h_{t-1}))), and tf.contrib.rnn.NASCell has `use_biases=False` by default
  and adds its bias to `m_matrix`, the recurrent branch, when asked.
- `zero_leaves` (default none): leaves whose weights are held at zero, so their pre-activation is
  the constant 0 and they are never trained. The tree cannot express a cell of fewer than `base`
  weighted leaves otherwise: the zoo's `lstm` uses four of the eight and holds the others at zero,
  which keeps it an LSTM when it is trained (the unused leaves would add a learned linear term to
  the forget path).
"""
from __future__ import annotations

from typing import NamedTuple

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from ..errors import ArchError
from . import drawing
from .base import SearchSpace, register
from .decisions import Choice
from .enas_rnn import _train_small as enas_rnn_train_small

COMBINATIONS = ("add", "elem_mult")                        # paper sec. 3.2
ACTIVATIONS = ("identity", "tanh", "sigmoid", "relu")      # paper sec. 3.2
BASES = (2, 4, 8)  # paper: base 8 in its experiments
ACT_COLORS = {"identity": "#eeeeee", "tanh": "#cfe2f3", "sigmoid": "#fce5cd", "relu": "#d9ead3"}
INJECT_COLOR = "#c55a11"  # the memory path: c_{t-1} in, c_t out


class TreeCell(NamedTuple):
    """An architecture of `nas_rnn` read as a cell (all Python ints, per node index)."""

    base: int
    combine: tuple[int, ...]        # [2*base-1]: 0 add, 1 elem_mult
    act: tuple[int, ...]            # [2*base-1]: 0 identity, 1 tanh, 2 sigmoid, 3 relu
    children: tuple[tuple[int, int] | None, ...]  # inner node -> (left, right); None for a leaf
    inject_combine: int
    inject_act: int
    c_node: int                     # its pre-activation becomes c_t
    inject_node: int                # receives c_{t-1}
    zero_leaves: tuple[int, ...] = ()  # leaves whose pre-activation is the constant 0

    @property
    def num_nodes(self) -> int:
        return len(self.act)


def tree_children(base: int) -> tuple[tuple[int, int] | None, ...]:
    """Per node index, its two children (None for leaves), level by level as in the module docstring."""
    children: list[tuple[int, int] | None] = [None] * base
    level_start, width = 0, base
    while width > 1:
        nxt = level_start + width
        children += [(level_start + 2 * k, level_start + 2 * k + 1) for k in range(width // 2)]
        level_start, width = nxt, width // 2
    return tuple(children)


def _search_paper(task: str) -> SearchPreset:
    """Weight-sharing search over `nas_rnn`. Zoph & Le trained every child from scratch, so for the
    shared weights and the controller loop this is the ENAS PTB recipe (Pham et al. 2018, sec. 3.1;
    enas/spaces/enas_rnn.py `_search_paper`, where Zoph & Le are silent) but for the shared lr; the
    space is the paper's: base 8 (Zoph & Le 2017, sec. 4.2). The controller of full NAS is the
    full-NAS strategy's own (enas/strategies/nas.py).

    The shared lr is 2, measured: over one paper-shaped epoch (400 shared steps of 64 x 35 at hidden
    1000, uniformly drawn trees; benchmarks/learning_curve.py --space nas_rnn --steps 400 --every 40
    --set shared.lr=...) the paper's lr 20 diverges (12.8 at step 40, 13.8 at 280, every point above
    uniform guessing's 9.21), ENAS's own 8.75 stays at uniform guessing (10.8 at step 40, 9.8 at 400),
    and lr 2 falls below it (README, Results). Trees of this space multiply and chain activations
    freely, where the ENAS cell is a sum of gated highway nodes, so a smaller step is what they bear."""
    return SearchPreset(
        space="nas_rnn", space_options={"base": 8}, task=task,
        epochs=150, batch_size=64, bptt=35, eval_batch_size=64,      # ENAS paper sec. 3.1
        shared_steps=400, derive_samples=100,                         # ENAS paper; ENAS-pytorch
        model=ModelConfig(hidden_size=1000,                           # ENAS-pytorch shared_hid
                          dropout_e=0.25, dropout_x=0.75, dropout_h=0.25, dropout_o=0.75,  # official ptb_search.sh
                          max_hidden_norm=25.0,                       # ENAS-pytorch max_norm
                          init_range=0.04),                           # official: U(-0.04, 0.04), H > 400
        shared=OptimConfig(lr=2.0,                                    # measured (docstring)
                           grad_clip=0.25, lr_decay=0.96, lr_decay_start=15,
                           weight_decay=1e-7),                        # ENAS paper sec. 3.1
        controller=ControllerConfig(hidden_size=100, lr=3.5e-4, adam_beta1=0.0, temperature=5.0,
                                    tanh_constant=2.5, entropy_weight=1e-4, baseline_decay=0.99,
                                    num_aggregate=10, steps=200, reward_c=80.0, init_range=0.1),
        # (the ENAS preset's predecessor shaping, index_distance_penalty and scale_index_input, has
        # nothing to act on here: every decision of this space is a Choice)
    )


def _train_paper(task: str) -> TrainConfig:
    """Final training of a `nas_rnn` cell: the official ENAS final recipe (melodyguan/enas
    scripts/ptb_final.sh, enas/spaces/enas_rnn.py `_train_paper`). Zoph & Le's own final models (two
    layers, hidden sized to a parameter budget, sec. 4.2) need a multi-layer LM this package does not
    build; their optimiser settings are not stated, so the ENAS ones stand in."""
    return TrainConfig(
        task=task, epochs=2000, batch_size=64, bptt=35, eval_batch_size=10,
        model=ModelConfig(hidden_size=748, dropout_e=0.21, dropout_x=0.75, dropout_h=0.25, dropout_o=0.76,
                          init_range=0.04),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, lr_decay=0.9991, lr_decay_start=14, lr_min=0.001,
                          weight_decay=5e-7),
    )


def _search_tiny(task: str) -> SearchPreset:
    """Seconds on two CPU cores: the enas_rnn tiny sizes and settings (enas/spaces/enas_rnn.py
    `_search_tiny`) on a base-4 tree (18 decisions)."""
    return SearchPreset(
        space="nas_rnn", space_options={"base": 4}, task=task,
        epochs=2, batch_size=16, bptt=20, eval_batch_size=16, eval_max_batches=20, shared_steps=15,
        derive_samples=8, analyze_samples=100, analyze_batches=2, log_every=5,
        nas_updates=3, child_max_steps=30,  # full NAS / random from scratch: 6 children of 30 steps
        model=ModelConfig(hidden_size=48, dropout_e=0.1, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25,
                          max_hidden_norm=5.0, init_range=0.1),
        shared=OptimConfig(lr=5.0, grad_clip=0.25),
        controller=ControllerConfig(hidden_size=32, adam_beta1=0.0, steps=4, num_aggregate=2,
                                    # memory=true: 8 rows stored after epoch 1, loss in epoch 2, 2 replaced
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
    )


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 100 steps at hidden 48 and clip 0.25 (the sizes of enas_rnn's tiny preset), but lr 5,
    not 20, as the search presets: trees drawn from the space are unstable at 20 (`_search_small`).
    The zoo LSTM is not (benchmarks/learning_curve.py --final --arch lstm --space nas_rnn --preset
    tiny: training loss 6.87 after 100 steps at lr 5, 6.66 at lr 20)."""
    return TrainConfig(
        task=task, epochs=1, batch_size=16, bptt=20, max_steps=100, eval_max_batches=20, log_every=10,
        model=ModelConfig(hidden_size=48, dropout_x=0.25, dropout_h=0.25, dropout_o=0.25, max_hidden_norm=5.0,
                          init_range=0.1),
        optim=OptimConfig(lr=5.0, grad_clip=0.25),
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns for real on one machine: the enas_rnn `small` sizes and loop (hidden 200,
    600 shared steps of 64 x 35 with clip 0.25, 20 controller updates of 10 architectures per epoch)
    on the paper's base-8 tree, but lr 5 as the tiny preset: at lr 20 the shared loss of uniformly
    drawn trees jumps about uniform guessing (benchmarks/learning_curve.py --space nas_rnn --preset
    small: 11.74 at step 10, 13.24 at 50, 9.02 at 100) where at lr 5 it falls (8.64, 7.97, 7.59).
    (With the leaf bias on, before it followed the paper: 9.46 at step 100 at lr 20, 7.66 at lr 5.)"""
    return SearchPreset(
        space="nas_rnn", space_options={"base": 8}, task=task,
        epochs=6, batch_size=64, bptt=35, eval_batch_size=64, eval_max_batches=10,
        shared_steps=100, derive_samples=100, log_every=20,
        model=ModelConfig(hidden_size=200, dropout_e=0.1, dropout_x=0.5, dropout_h=0.25, dropout_o=0.5,
                          max_hidden_norm=11.0,    # 25 * sqrt(200 / 1000), as enas_rnn small
                          init_range=0.1),
        shared=OptimConfig(lr=5.0, grad_clip=0.25, weight_decay=1e-7),
        controller=ControllerConfig(hidden_size=100, lr=3.5e-4, adam_beta1=0.0, temperature=5.0,
                                    tanh_constant=2.5, entropy_weight=1e-4, baseline_decay=0.99,
                                    num_aggregate=10, steps=20, reward_c=80.0, init_range=0.1),
    )


def _train_small(task: str) -> TrainConfig:
    """Final training on one machine, the enas_rnn `small` recipe (200-step epochs of 64 x 35 tokens at
    hidden 200, clip 0.25, x0.7 per epoch over the last six, light dropout) but lr 10 and four more
    epochs before the decay. The reason is a derived tree, trained with leaf biases: test perplexity
    188 at lr 5 and 156 at lr 10 in 12 epochs (decay from the sixth), 140 in these 16 (README); drawn
    trees are unstable at lr 20 (`_search_small`). The zoo LSTM, an LSTM also when trained, takes lr
    20 best (benchmarks/learning_curve.py --final --arch lstm --space nas_rnn --preset small:
    training loss after 300 steps 5.96 at lr 20, 6.17 at lr 10, 6.47 at lr 5; before its unused
    leaves were held at zero it rose to 10.07 at lr 20)."""
    cfg = enas_rnn_train_small(task)
    cfg.task, cfg.epochs = task, 16
    cfg.optim.lr, cfg.optim.lr_decay_start = 10.0, 10
    return cfg


@register
class NASRNNSpace(SearchSpace):
    name = "nas_rnn"
    tasks = ("ptb",)
    models = "enas.nn.tree_lm"
    defaults = {"base": 8,           # Zoph & Le 2017, sec. 4.2: base 8
                "leaf_bias": False,  # sec. 3.2 writes no bias; NASCell's use_biases=False
                "zero_leaves": ()}   # every leaf trained (module docstring)

    def __init__(self, **options):
        if isinstance(options.get("zero_leaves"), list):  # as read back from JSON; options stay hashable
            options["zero_leaves"] = tuple(options["zero_leaves"])
        super().__init__(**options)
    presets = {("search", "paper"): _search_paper, ("train", "paper"): _train_paper,
               ("search", "tiny"): _search_tiny, ("train", "tiny"): _train_tiny,
               ("search", "small"): _search_small, ("train", "small"): _train_small}

    def build_decisions(self):
        base = self.options["base"]
        if isinstance(base, bool) or base not in BASES:
            raise ArchError(f"nas_rnn: base must be 2, 4 or 8, got {base!r}")
        if not isinstance(self.options["leaf_bias"], bool):
            raise ArchError(f"nas_rnn: leaf_bias must be true or false, got {self.options['leaf_bias']!r}")
        zero = self.options["zero_leaves"]
        if not (isinstance(zero, tuple) and all(type(k) is int and 0 <= k < base for k in zero)
                and len(set(zero)) == len(zero)):
            raise ArchError(f"nas_rnn: zero_leaves must be distinct leaves 0..{base - 1}, got {zero!r}")
        n = 2 * base - 1
        decisions = []
        for j in range(n):
            decisions.append(Choice(f"node{j}.combine", len(COMBINATIONS), COMBINATIONS, group="combine"))
            decisions.append(Choice(f"node{j}.act", len(ACTIVATIONS), ACTIVATIONS, group="act"))
        decisions.append(Choice("inject.combine", len(COMBINATIONS), COMBINATIONS, group="combine"))
        decisions.append(Choice("inject.act", len(ACTIVATIONS), ACTIVATIONS, group="act"))
        labels = tuple(f"node{j}" for j in range(n))
        decisions.append(Choice("cell.c_node", n, labels, group="cell_index"))
        decisions.append(Choice("cell.inject_node", n, labels, group="cell_index"))
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        # 2 (2 base - 1) + 4 = 4 base + 2 numbers; a count that names no whole base is left to fail
        # as a wrong length, one that names base 3, 5, ... fails in build_decisions.
        return {"base": (num_tokens - 2) // 4} if num_tokens >= 6 and (num_tokens - 2) % 4 == 0 else {}

    def cell(self, tokens) -> TreeCell:
        """The architecture as a TreeCell (tokens already validated)."""
        base = self.options["base"]
        n = 2 * base - 1
        t = list(tokens)
        return TreeCell(base=base, combine=tuple(t[0:2 * n:2]), act=tuple(t[1:2 * n:2]),
                        children=tree_children(base), inject_combine=t[2 * n], inject_act=t[2 * n + 1],
                        c_node=t[2 * n + 2], inject_node=t[2 * n + 3],
                        zero_leaves=tuple(sorted(self.options["zero_leaves"])))

    # --- drawing --------------------------------------------------------------------------------
    def _node_label(self, cell: TreeCell, j: int) -> str:
        op = "+" if cell.combine[j] == 0 else "*"
        if j in cell.zero_leaves:
            args = "0"
        elif cell.children[j] is None:
            recurrent = f"(U{j}h+b{j})" if self.options["leaf_bias"] else f"U{j}h"
            args = f"W{j}x {op} {recurrent}"
        else:
            args = "a{} {} a{}".format(cell.children[j][0], op, cell.children[j][1])
        return f"{ACTIVATIONS[cell.act[j]]}({args})"

    def text(self, tokens) -> str:
        cell = self.cell(tokens)
        n = cell.num_nodes
        width = len(f"node {n - 1}")
        lines = [f"nas_rnn cell, base {cell.base}: {' '.join(map(str, tokens))}"]
        for j in range(n):
            line = f"{f'node {j}':<{width}}  a{j} = {self._node_label(cell, j)}"
            if j == cell.inject_node:
                inj = "+" if cell.inject_combine == 0 else "*"
                line += f";  inject: a{j} = {ACTIVATIONS[cell.inject_act]}(a{j} {inj} c_prev)"
            if j == cell.c_node:
                line += ";  c_t = its pre-activation"
            if j == n - 1:
                line += ";  h_t = a{}".format(j)
            lines.append(line)
        return "\n".join(lines)

    def figure(self, tokens):
        """The tree bottom-up: leaves (fed by x_t and h_{t-1}) in the bottom row, the root under h_t;
        each box shows a node's combination and activation. The memory is marked in the boxes of the
        nodes it touches, outlined in its colour: the inject node names how c_{t-1} enters it, the c_t
        node that its pre-activation leaves as c_t. A legend names the colours."""
        cell = self.cell(tokens)
        n, base = cell.num_nodes, cell.base
        levels = base.bit_length()  # rows of nodes: base 8 -> 4
        step_x, step_y = 1.3, 1.1
        pos: dict[int, tuple[float, float]] = {k: (1.4 + step_x * k, 0.5) for k in range(base)}
        for j in range(base, n):  # an inner node above the middle of its children
            left, right = cell.children[j]
            pos[j] = ((pos[left][0] + pos[right][0]) / 2, pos[left][1] + step_y)
        fig, ax = drawing.inch_axes(2.8 + step_x * base, 0.5 + step_y * levels + 0.3)
        drawing.caption(fig, f"{self.name} base {base}: {' '.join(map(str, tokens))}")
        boxes = {}
        for j in range(n):
            act = ACTIVATIONS[cell.act[j]]
            lines = [f"{j}: {COMBINATIONS[cell.combine[j]]}", act]
            if j == cell.inject_node:
                lines.append(f"c_t-1 in: {COMBINATIONS[cell.inject_combine]}, {ACTIVATIONS[cell.inject_act]}")
            if j == cell.c_node:
                lines.append("c_t out (pre-act.)")
            boxes[j] = drawing.box(ax, *pos[j], "\n".join(lines), ACT_COLORS[act], fontsize=8 - (len(lines) > 2))
            if j in (cell.inject_node, cell.c_node):
                boxes[j].get_bbox_patch().set(ec=INJECT_COLOR, lw=2.2)
        for j in range(base, n):
            for k in cell.children[j]:
                drawing.arrow(ax, boxes[k], boxes[j], (0.5, 1), (0.5, 0))
        rx, ry = pos[n - 1]
        h_box = drawing.box(ax, rx, ry + 0.8, "h_t", "#ffffff", fontsize=9)
        drawing.arrow(ax, boxes[n - 1], h_box, (0.5, 1), (0.5, 0))
        drawing.legend(fig, [(a, dict(fc=c)) for a, c in ACT_COLORS.items()]
                       + [("memory: c_t-1 in, c_t out", dict(color=INJECT_COLOR, lw=2.2)),
                          ("feeds", dict(color=drawing.EDGE_COLOR))])
        return fig
