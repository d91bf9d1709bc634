"""DARTS's convolutional cell space (Liu, Simonyan & Yang 2019, sec. 2.1; official quark0/darts
cnn/model_search.py, cnn/genotypes.py).

A normal cell and a reduction cell, each with two inputs (the outputs of the two previous cells) and
4 intermediate nodes; in the relaxed search every node is fed by every earlier node, 2 + 3 + 4 + 5 =
14 edges per cell, each a softmax-weighted mixture of the 8 ops of `MIXED_OPS` (genotypes.py
PRIMITIVES, `none` first); the cell outputs the concatenation of its 4 intermediate nodes. A discrete
architecture (a genotype) keeps two (input, op) pairs per node, never `none`. Arc format, in the
style of `enas_micro`: the normal cell, then the reduction cell, each node as

    index_1 op_1 index_2 op_2                                   (16 numbers per cell)

index in 0 .. 2+i-1 (0, 1: the cell inputs), op in {0 max_pool_3x3, 1 avg_pool_3x3, 2 skip_connect,
3 sep_conv_3x3, 4 sep_conv_5x5, 5 dil_conv_3x3, 6 dil_conv_5x5} (PRIMITIVES without `none`, in the
official order). A genotype's pairs are written in its own order, so the published DARTS_V2 normal
cell [(sep_conv_3x3, 0), (sep_conv_3x3, 1), ...] starts `0 3 1 3`. Two pairs of a node may read
the same input (an ENAS controller or uniform draws can pick that); DARTS's own derivation never
does (it keeps two distinct edges per node, `derive`).

The relaxation (what the `darts` strategy asks of a space): `MIXED_OPS`, `mixture_shape` (the mixing
weights of a forward, [2 cells, 14 edges, 8 ops]), `edge_names`, and `derive(weights)`, the official
rule that turns the weights into a genotype (model_search.py `genotype()._parse`).
"""
from __future__ import annotations

import torch

from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from .base import register
from .cells import TwoCellSpace

# genotypes.py PRIMITIVES, in the official order: the ops of every edge of the relaxed cell
MIXED_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
DARTS_OPS = MIXED_OPS[1:]  # the ops of a genotype (and of the arc's op tokens)
PARAMETER_FREE = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")
OP_COLORS = {"max_pool_3x3": "#f9cb9c", "avg_pool_3x3": "#fce5cd", "skip_connect": "#eeeeee",
             "sep_conv_3x3": "#d9ead3", "sep_conv_5x5": "#b6d7a8", "dil_conv_3x3": "#cfe2f3",
             "dil_conv_5x5": "#9fc5e8"}


def edge_index(node: int, source: int) -> int:
    """Row of the edge source -> intermediate node `node` in a cell's mixing weights (official order:
    node 0's two edges, then node 1's three, ...)."""
    return node * (node + 3) // 2 + source


# --- presets -------------------------------------------------------------------------------------
# Search: official cnn/train_search.py; final: cnn/train.py (CIFAR-10). The same recipes run on
# Fashion-MNIST, whose shapes come from the data.

def _controller() -> ControllerConfig:
    """ENAS or random search on this space: the ENAS micro search's controller (enas/spaces/enas_micro.py,
    official scripts/cifar10_micro_search.sh), without the micro space's op biases."""
    return ControllerConfig(hidden_size=64, lr=0.0035, adam_beta1=0.0, temperature=0.0, tanh_constant=1.10,
                            op_tanh_reduce=2.5, entropy_weight=1e-4, baseline_decay=0.99, num_aggregate=10,
                            steps=30, reward_c=1.0, init_range=0.1, anchors="own_step")


def _search_paper(task: str) -> SearchPreset:
    return SearchPreset(
        space="darts_cnn", space_options={"num_nodes": 4}, task=task,
        epochs=50, batch_size=64, eval_batch_size=64,  # --epochs 50 --batch_size 64
        shared_steps=0,                  # one pass over the weights' half of the training set per epoch
        num_valid=25000,                 # --train_portion 0.5: the other half trains alpha
        log_every=50, derive_samples=100,
        model=ModelConfig(channels=16, num_layers=8),  # --init_channels 16 --layers 8
        shared=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.001, lr_T0=50, lr_T_mul=1,  # CosineAnnealingLR
                           momentum=0.9, weight_decay=3e-4, grad_clip=5.0),  # over the 50 epochs
        controller=_controller(),
        sections={"darts": dict(arch_lr=3e-4, arch_beta1=0.5, arch_beta2=0.999,  # architect.py Adam
                                arch_weight_decay=1e-3,    # --arch_weight_decay 1e-3
                                order=2)},                 # the paper's DARTS (second order): --unrolled
    )


def _train_paper(task: str) -> TrainConfig:
    return TrainConfig(
        task=task, epochs=600, batch_size=96, eval_batch_size=96, num_valid=0,  # --epochs 600 --batch_size 96
        cutout=16,                                       # --cutout --cutout_length 16
        aux_weight=0.4,                                  # --auxiliary --auxiliary_weight 0.4
        model=ModelConfig(channels=36, num_layers=20, drop_path=0.2, aux_head=True, style="final"),
        optim=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.0, lr_T0=600, lr_T_mul=1,  # CosineAnnealingLR
                          momentum=0.9, weight_decay=3e-4, grad_clip=5.0),
    )


def _search_tiny(task: str) -> SearchPreset:
    """Seconds on two CPU cores: 3 cells of 2 nodes, 8 channels, 10 steps an epoch."""
    return SearchPreset(
        space="darts_cnn", space_options={"num_nodes": 2}, task=task,
        epochs=2, batch_size=32, eval_batch_size=64, shared_steps=10, num_valid=500, eval_max_batches=2,
        derive_samples=6, analyze_samples=100, analyze_batches=2, log_every=5,
        nas_updates=2, child_max_steps=20,
        model=ModelConfig(channels=8, num_layers=3),
        shared=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.001, lr_T0=2, lr_T_mul=1, momentum=0.9,
                           weight_decay=3e-4, grad_clip=5.0),
        controller=ControllerConfig(hidden_size=32, lr=0.0035, tanh_constant=1.5, steps=3, num_aggregate=4,
                                    reward_c=1.0, anchors="own_step",
                                    memory_start_epoch=1, memory_per_epoch=8, memory_size=8, memory_replace=2,
                                    memory_loss_start_epoch=2, memory_batch=4),
        sections={"darts": dict(arch_lr=3e-4, arch_beta1=0.5, arch_beta2=0.999, arch_weight_decay=1e-3, order=1)},
    )


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 3 cells of 8 channels, three 50-step epochs."""
    return TrainConfig(
        epochs=3, batch_size=32, eval_batch_size=100, max_steps=50, eval_max_batches=10, log_every=25,
        num_valid=0, model=ModelConfig(channels=8, num_layers=3, style="final"),
        optim=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.0, lr_T0=3, lr_T_mul=1, momentum=0.9,
                          weight_decay=3e-4, grad_clip=5.0),
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns on one machine (Fashion-MNIST: about ten minutes on two CPU cores): 5 cells
    of 3 nodes at 8 channels, batch 32, three 100-step epochs, the official optimisers, first order.
    alpha's lr is ten times the official: in 300 steps (the official search makes about 20,000) alpha
    would otherwise barely leave its initial values."""
    cfg = _search_paper(task)
    cfg.space_options = {"num_nodes": 3}
    cfg.epochs, cfg.batch_size, cfg.shared_steps, cfg.num_valid, cfg.log_every = 3, 32, 100, 10000, 25
    cfg.eval_max_batches, cfg.derive_samples = 10, 20
    cfg.model = ModelConfig(channels=8, num_layers=5)
    cfg.shared.lr_T0 = 3
    cfg.controller.steps = 10
    cfg.sections["darts"].update(order=1, arch_lr=3e-3)
    return cfg


def _train_small(task: str) -> TrainConfig:
    """Final training on one machine (Fashion-MNIST: about half an hour on two CPU cores): 6 cells of
    12 channels, the official recipe (auxiliary head included) over 3 epochs, without drop path or
    cutout, which a run this short cannot afford."""
    return TrainConfig(
        epochs=3, batch_size=96, eval_batch_size=200, num_valid=0, log_every=50, aux_weight=0.4,
        model=ModelConfig(channels=12, num_layers=6, aux_head=True, style="final"),
        optim=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.0, lr_T0=3, lr_T_mul=1, momentum=0.9,
                          weight_decay=3e-4, grad_clip=5.0),
    )


@register
class DartsCnnSpace(TwoCellSpace):
    name = "darts_cnn"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.darts_cnn"
    op_names = DARTS_OPS
    op_colors = OP_COLORS
    blocks_option = "num_nodes"
    block_word = "node"
    max_blocks = 8
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    defaults = {"num_nodes": 4}  # model_search.py Network(steps=4, multiplier=4)
    mixed_ops = MIXED_OPS

    def outputs(self, blocks) -> list[int]:
        """Every intermediate node (genotype normal_concat / reduce_concat = range(2, 2 + nodes))."""
        return list(range(2, 2 + len(blocks)))

    # --- the relaxation ---------------------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        return edge_index(self.blocks, 0)

    @property
    def mixture_shape(self) -> tuple[int, int, int]:
        """Mixing weights of a relaxed forward: [normal, reduce] x edges x MIXED_OPS."""
        return (2, self.num_edges, len(MIXED_OPS))

    def edge_names(self) -> list[str]:
        """The rows of a cell's mixing weights, in words (`source -> node`)."""
        return [f"{self.node_name(j)} -> {self.node_name(2 + i)}" for i in range(self.blocks) for j in range(2 + i)]

    def derive(self, weights: torch.Tensor) -> tuple[int, ...]:
        """The genotype of mixing weights [2, E, 8] (official model_search.py `genotype()._parse`): per
        node, the two input edges whose strongest op other than `none` is strongest, each with that op,
        the stronger first. Ties go to the earlier edge and the earlier op, as the official sort and scan."""
        tokens = []
        for cell in weights.detach().double().cpu().tolist():
            best = [max(range(1, len(MIXED_OPS)), key=row.__getitem__) for row in cell]  # first max, no none
            for i in range(self.blocks):
                first = edge_index(i, 0)
                edges = sorted(range(first, first + 2 + i), key=lambda e: -cell[e][best[e]])[:2]  # stable
                for e in edges:
                    tokens += [e - first, best[e] - 1]  # op token: MIXED_OPS index without none
        return tuple(tokens)

    def parameter_free(self, tokens) -> int:
        """Parameter-free ops (pools and skips) in the normal cell: DARTS's collapse shows here first."""
        normal, _ = self.cells(tokens)
        return sum(self.op_names[blk[k]] in PARAMETER_FREE for blk in normal for k in (1, 3))
