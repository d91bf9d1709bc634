"""DARTS's recurrent cell space (Liu, Simonyan & Yang 2019, sec. 2.1 and 3.2; official quark0/darts
rnn/model.py, model_search.py, genotypes.py).

Node 0 is fixed: s_0 = h_{t-1} + c_0 * (tanh(h_0) - h_{t-1}), [c_0, h_0] = [x_t, h_{t-1}] W_0, c_0 through
a sigmoid. Each of the 8 further nodes i reads one earlier node j through its own weight W_i (one per
node, whatever it reads, as the official code has it):

    [c, h] = s_j W_i,   s_i = s_j + sigmoid(c) * (f_i(h) - s_j)

and the cell outputs the mean of nodes 1..8 (genotypes.py CONCAT = 8). In the relaxed search node i
is fed by every earlier node, each edge a softmax-weighted mixture of `MIXED_OPS` (PRIMITIVES: none,
tanh, relu, sigmoid, identity). Arc format, in the style of `enas_rnn`:

    p_1 f_1 p_2 f_2 ... p_8 f_8        (16 numbers)

p_i in 0..i-1 (the node node i reads), f_i in {0 tanh, 1 relu, 2 sigmoid, 3 identity}. The published
DARTS cell (genotypes.py DARTS_V2) is `0 2 1 1 1 1 1 3 2 0 5 2 3 0 5 1`.

The relaxation (what the `darts` strategy asks of a space): `mixed_ops`, `mixture_shape` ([36 edges,
5 ops] for 8 nodes), `edge_names`, and `derive(weights)`, the official rule (model_search.py
`genotype()._parse`: per node the one predecessor whose strongest op other than `none` is strongest).
"""
from __future__ import annotations

import torch

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Predecessor
from .enas_rnn import cell_figure

MIXED_OPS = ("none", "tanh", "relu", "sigmoid", "identity")  # genotypes.py PRIMITIVES
ACTIVATIONS = MIXED_OPS[1:]
MAX_NODES = 32


def edge_index(node: int, source: int) -> int:
    """Row of the edge source -> node (1 <= node, source < node) in the mixing weights (official order:
    node 1's one edge, node 2's two, ...)."""
    return (node - 1) * node // 2 + source


# --- presets (Penn Treebank: official rnn/train_search.py and rnn/train.py) ---------------------------

def _controller() -> ControllerConfig:
    """ENAS or random search on this space: the ENAS PTB controller (enas/spaces/enas_rnn.py)."""
    return ControllerConfig(hidden_size=100, lr=3.5e-4, adam_beta1=0.0, temperature=5.0, tanh_constant=2.5,
                            entropy_weight=1e-4, baseline_decay=0.99, num_aggregate=10, steps=200, reward_c=80.0,
                            index_distance_penalty=1 / 6, scale_index_input=True, anchors="before", init_range=0.1)


def _search_paper(task: str) -> SearchPreset:
    return SearchPreset(
        space="darts_rnn", space_options={"num_nodes": 8}, task=task,
        epochs=50, batch_size=256, bptt=35, eval_batch_size=10,  # --epochs 50 --batch_size 256; eval batch 10
        shared_steps=0, log_every=50, derive_samples=100,
        model=ModelConfig(hidden_size=300,                      # --emsize 300 --nhid 300
                          dropout_o=0.75, dropout_h=0.25, dropout_x=0.75, dropout_i=0.2, dropout_e=0.0,
                          init_range=0.04,                      # model.py INITRANGE
                          decoder_bias=True),                   # model.py: nn.Linear decoder, bias 0
        shared=OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=5e-7),  # --lr 20 --clip 0.25 --wdecay 5e-7
        controller=_controller(),
        sections={"darts": dict(arch_lr=3e-3, arch_beta1=0.9, arch_beta2=0.999,  # --arch_lr; Adam's betas
                                arch_weight_decay=1e-3, order=2,            # --arch_wdecay; the paper's
                                unrolled_clip=True)},                       # rnn/architect.py _clip
    )


def _train_paper(task: str) -> TrainConfig:
    return TrainConfig(
        task=task, epochs=8000, batch_size=64, bptt=35, eval_batch_size=10,  # rnn/train.py
        model=ModelConfig(hidden_size=850, dropout_o=0.75, dropout_h=0.25, dropout_x=0.75, dropout_i=0.2,
                          dropout_e=0.1, init_range=0.04, style="final"),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=8e-7),
    )


def _search_tiny(task: str) -> SearchPreset:
    """Seconds on two CPU cores: 4 nodes at hidden 48, 15 steps an epoch."""
    return SearchPreset(
        space="darts_rnn", space_options={"num_nodes": 4}, task=task,
        epochs=2, batch_size=16, bptt=20, eval_batch_size=16, eval_max_batches=20, shared_steps=15,
        derive_samples=8, analyze_samples=100, analyze_batches=2, log_every=5, nas_updates=3, child_max_steps=30,
        model=ModelConfig(hidden_size=48, dropout_o=0.25, dropout_h=0.1, dropout_x=0.25, dropout_i=0.1,
                          init_range=0.1),
        shared=OptimConfig(lr=5.0, grad_clip=0.25, weight_decay=5e-7),
        controller=ControllerConfig(hidden_size=32, adam_beta1=0.0, steps=4, num_aggregate=2, anchors="before",
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
        sections={"darts": dict(arch_lr=3e-3, arch_beta1=0.9, arch_beta2=0.999, arch_weight_decay=1e-3, order=1,
                                unrolled_clip=True)},
    )


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 100 steps at hidden 48."""
    return TrainConfig(
        epochs=1, batch_size=16, bptt=20, max_steps=100, eval_max_batches=20, log_every=10,
        model=ModelConfig(hidden_size=48, dropout_o=0.25, dropout_h=0.1, dropout_x=0.25, dropout_i=0.1,
                          init_range=0.1, style="final"),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, weight_decay=8e-7),
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns on one machine: the paper's loop at hidden 200 and batch 64, first order, with
    the dropouts of the `small` final training (x and o 0.25, h and i 0.1): with the search script's
    (0.75, 0.75, 0.25, 0.2) the shared loss was still 9.27 after 60 steps, against 8.5 with these."""
    cfg = _search_paper(task)
    cfg.epochs, cfg.batch_size, cfg.eval_batch_size, cfg.shared_steps, cfg.eval_max_batches = 4, 64, 64, 100, 10
    cfg.log_every = 20
    cfg.model.hidden_size = 200
    cfg.model.dropout_x, cfg.model.dropout_o, cfg.model.dropout_h, cfg.model.dropout_i = 0.25, 0.25, 0.1, 0.1
    cfg.controller.steps = 20
    cfg.sections["darts"]["order"] = 1
    return cfg


def _train_small(task: str) -> TrainConfig:
    """Final training on one machine: hidden 200, 12 epochs of 200 steps, lr x0.7 per epoch from the sixth."""
    return TrainConfig(
        epochs=12, max_steps=200, batch_size=64, bptt=35, eval_batch_size=64, log_every=50,
        model=ModelConfig(hidden_size=200, dropout_o=0.25, dropout_h=0.1, dropout_x=0.25, dropout_i=0.1,
                          dropout_e=0.05, init_range=0.1, style="final"),
        optim=OptimConfig(lr=20.0, grad_clip=0.25, lr_decay=0.7, lr_decay_start=6, weight_decay=8e-7),
    )


@register
class DartsRnnSpace(SearchSpace):
    name = "darts_rnn"
    tasks = ("ptb",)
    models = "enas.nn.darts_rnn"
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    defaults = {"num_nodes": 8}  # genotypes.py STEPS = 8
    initial_anchors = 1  # node 0 exists before any decision
    mixed_ops = MIXED_OPS

    def build_decisions(self):
        n = whole_option(self.name, "num_nodes", self.options["num_nodes"], 1, MAX_NODES)
        decisions = []
        for i in range(1, n + 1):
            decisions += [Predecessor(f"node{i}.prev", i), Choice(f"node{i}.act", len(ACTIVATIONS), ACTIVATIONS,
                                                                  anchor=True)]
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        return {"num_nodes": num_tokens // 2} if num_tokens >= 2 and num_tokens % 2 == 0 else {}

    def cell(self, tokens) -> tuple[list[int], list[int]]:
        """(prev, act) per node 0..N: prev[0] = -1 (x_t, h_{t-1}), act[i] an index into ACTIVATIONS
        (node 0: tanh)."""
        tokens = list(tokens)
        return [-1] + tokens[0::2], [0] + tokens[1::2]

    # --- the relaxation ---------------------------------------------------------------------------
    @property
    def mixture_shape(self) -> tuple[int, int]:
        n = self.options["num_nodes"]
        return (edge_index(n + 1, 0), len(MIXED_OPS))

    def edge_names(self) -> list[str]:
        n = self.options["num_nodes"]
        return [f"node {j} -> node {i}" for i in range(1, n + 1) for j in range(i)]

    def derive(self, weights: torch.Tensor) -> tuple[int, ...]:
        """The genotype of mixing weights [E, 5] (official model_search.py `genotype()._parse`): per node,
        the one predecessor whose strongest op other than `none` is strongest, with that op; ties go to
        the earlier predecessor and the earlier op."""
        w = weights.detach().double().cpu().tolist()
        best = [max(range(1, len(MIXED_OPS)), key=row.__getitem__) for row in w]
        tokens = []
        for i in range(1, self.options["num_nodes"] + 1):
            j = max(range(i), key=lambda j: w[edge_index(i, j)][best[edge_index(i, j)]])  # first of the maxima
            tokens += [j, best[edge_index(i, j)] - 1]
        return tuple(tokens)

    # --- drawing -----------------------------------------------------------------------------
    def text(self, tokens) -> str:
        prev, act = self.cell(tokens)
        width = len(f"node {len(prev) - 1}")
        lines = [f"{self.name} cell, {len(prev) - 1} nodes after node 0: {' '.join(map(str, tokens))}",
                 f"  {'node 0':<{width}} = tanh(x_t, h_{{t-1}})   [fixed]"]
        for i in range(1, len(prev)):
            lines.append(f"  {f'node {i}':<{width}} = {ACTIVATIONS[act[i]]}(node {prev[i]})")
        lines.append(f"  {'h_t':<{width}} = mean(node 1 .. node {len(prev) - 1})")
        return "\n".join(lines)

    def figure(self, tokens):
        prev, act = self.cell(tokens)
        return cell_figure(f"{self.name}: {' '.join(map(str, tokens))}", prev, [ACTIVATIONS[a] for a in act],
                           list(range(1, len(prev))))
