"""PNAS's cell space (Liu et al. 2018, "Progressive Neural Architecture Search", sec. 3.1; the released
PNASNet-5, tensorflow/models research/slim/nets/nasnet/pnasnet.py).

One cell of B blocks (option `num_blocks`, the paper's B = 5). Block b combines two inputs, each from
{the previous cell's output, the one before it, any earlier block of this cell}, through one op each,
added (the paper keeps addition as its only combination). The cell outputs the concatenation of all its
B blocks (pnasnet.py `used_hiddenstates = [1, 1, 0, 0, 0, 0, 0]`: only the two cell inputs are left
out), so it has 5F channels at F filters. There is one cell type: the network uses the same cell at
stride 2 where it reduces (the ops that read a cell input take the stride).

Arc format, in the style of `darts_cnn` with one cell: per block

    index_1 op_1 index_2 op_2                                 (4B numbers)

index 0 = c_{k-2} (the cell before the previous one), 1 = c_{k-1}, 2 + j = block j; op in the paper's
order {0 sep_conv_3x3, 1 sep_conv_5x5, 2 sep_conv_7x7, 3 conv_7x1_1x7, 4 identity, 5 avg_pool_3x3,
6 max_pool_3x3, 7 dil_conv_3x3} (the depthwise-separable convolutions are applied twice, as the
NASNet/PNASNet code does; the dilated convolution is depthwise-separable with dilation 2, as
DARTS's).

Canonical form: a block's two (input, op) pairs are unordered (their sum is), so `canonical` writes the
smaller pair first. Of the 2 x 8 = 16 (input, op) pairs of a one-block cell, 16 x 16 = 256 ordered
pairs exist (the count the PNAS paper starts from) but only 16 * 17 / 2 = 136 distinct cells
(`one_block_cells`); level b = 1 of the search trains those 136.

The network (enas/nn/darts_cnn.py, the cell with its one block list at both strides): three stages
of N cells, the first cell of the second and third stages at stride 2, so `num_layers` = 3N (`layers`;
search N = 2, F = 24; PNASNet-5 on CIFAR-10 N = 3, F = 48, 3.2M parameters: Table 1).
"""
from __future__ import annotations

import itertools

from ..arch import Arch
from ..config import ControllerConfig, ModelConfig, OptimConfig, SearchPreset, TrainConfig
from .base import register
from .cells import TwoCellSpace

PNAS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "identity", "avg_pool_3x3",
            "max_pool_3x3", "dil_conv_3x3")
OP_COLORS = {"sep_conv_3x3": "#d9ead3", "sep_conv_5x5": "#b6d7a8", "sep_conv_7x7": "#93c47d",
             "conv_7x1_1x7": "#ead1dc", "identity": "#eeeeee", "avg_pool_3x3": "#fce5cd",
             "max_pool_3x3": "#f9cb9c", "dil_conv_3x3": "#cfe2f3"}


def layers(n: int) -> int:
    """Cells of the network of N cells per stage: 3N, the stride-2 cells among them (at L//3 and 2L//3,
    nasnet_utils.calc_reduction_layers). pnasnet.py counts so (num_cells 12 for the N = 4 ImageNet
    model), and so PNASNet-5 at N = 3, F = 48 has Table 1's 3.2M parameters (3,176,602 here, without
    the auxiliary head, as DARTS counts)."""
    return 3 * n


# --- presets -------------------------------------------------------------------------------------
# The search presets build the search-style network (batch-statistics BN, enas/nn/darts_cnn.py), the
# network every space's children of full NAS train here and the one a supernet needs; PNAS's own
# children were ordinary networks, which `--set model.style=final` trains instead.

def _train_paper(task: str) -> TrainConfig:
    """PNASNet-5 on CIFAR-10: N = 3, F = 48 (Table 1). The paper trains it as NASNet trains its CIFAR-10
    models and gives no recipe of its own; this is DARTS's (cnn/train.py: 600 epochs of cosine SGD,
    cutout, drop path 0.2, auxiliary head), the recipe the other cell spaces of this package use."""
    return TrainConfig(
        task=task, epochs=600, batch_size=96, eval_batch_size=96, num_valid=0, cutout=16, aux_weight=0.4,
        model=ModelConfig(channels=48, num_layers=layers(3), drop_path=0.2, aux_head=True, style="final"),
        optim=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.0, lr_T0=600, lr_T_mul=1, momentum=0.9,
                          weight_decay=3e-4, grad_clip=5.0),
    )


def _controller(m: int) -> ControllerConfig:
    return ControllerConfig(hidden_size=64, lr=0.0035, adam_beta1=0.0, temperature=0.0, tanh_constant=1.10,
                            op_tanh_reduce=2.5, entropy_weight=1e-4, baseline_decay=0.99, num_aggregate=m,
                            steps=30, reward_c=1.0, init_range=0.1, anchors="own_step")


def _search_paper(task: str) -> SearchPreset:
    """The paper's search (sec. 5.1, Table 1): cells of up to B = 5 blocks, beam K = 256, every child
    of N = 2 cells per stage and F = 24 filters, trained for 20 epochs on 45,000 CIFAR-10 images (0.9M
    examples per model, Table 1) and scored on the 5,000 held out. The child optimiser the paper does
    not give: cosine SGD of DARTS's recipe (as `_train_paper`) over the 20 epochs."""
    return SearchPreset(
        space="pnas", space_options={"num_blocks": 5}, task=task,
        batch_size=32, eval_batch_size=100, num_valid=5000, log_every=50,
        epochs=150, shared_steps=0,  # a weight-sharing search of this space: the ENAS micro search's length
        child_epochs=20,
        model=ModelConfig(channels=24, num_layers=layers(2), style="search"),
        shared=OptimConfig(lr=0.025, schedule="cosine", lr_min=0.0, lr_T0=20, lr_T_mul=1, momentum=0.9,
                           weight_decay=3e-4, grad_clip=5.0),
        # full NAS and random search on this space: as many children as PNAS trains (1,160, Table 1), 20
        # per controller update; the controller (ENAS or full NAS) as on darts_cnn (enas/spaces/darts_cnn.py)
        nas_updates=58, controller=_controller(20),
        sections={"pnas": dict(beam=256, first_level=0)},
    )


def _search_small(task: str) -> SearchPreset:
    """A search that learns on one machine (Fashion-MNIST, two CPU cores; README): cells of up to 3
    blocks; 24 of the 136 one-block cells (seeded), then a beam of 12; children of 3 cells (one at
    stride 1, two at stride 2) at 12 filters, one short epoch of 120 steps of 64 images each, scored
    on 10 batches of the 5,000 held-out images."""
    cfg = _search_paper(task)
    cfg.space_options = {"num_blocks": 3}
    cfg.batch_size, cfg.eval_batch_size, cfg.eval_max_batches = 64, 250, 10
    cfg.epochs, cfg.shared_steps, cfg.derive_samples, cfg.controller.steps = 3, 100, 20, 10  # weight sharing
    cfg.child_epochs, cfg.child_max_steps = 1, 120
    cfg.model = ModelConfig(channels=12, num_layers=layers(1))
    cfg.shared = OptimConfig(lr=0.05, schedule="cosine", lr_min=0.0, lr_T0=1, lr_T_mul=1, momentum=0.9,
                             weight_decay=3e-4, grad_clip=5.0)
    cfg.nas_updates, cfg.controller.num_aggregate = 6, 8  # 48 children, as PNAS trains here
    cfg.sections = {"pnas": dict(beam=12, first_level=24)}
    return cfg


def _search_tiny(task: str) -> SearchPreset:
    """Seconds: cells of up to 2 blocks, 6 one-block cells, a beam of 3, children of 3 cells at 8
    filters and 20 steps."""
    cfg = _search_paper(task)
    cfg.space_options = {"num_blocks": 2}
    cfg.batch_size, cfg.eval_batch_size, cfg.eval_max_batches, cfg.num_valid = 32, 64, 2, 500
    cfg.epochs, cfg.shared_steps, cfg.derive_samples, cfg.log_every = 2, 10, 6, 5  # weight sharing
    cfg.analyze_samples, cfg.analyze_batches = 100, 2
    cfg.child_epochs, cfg.child_max_steps = 1, 20
    cfg.model = ModelConfig(channels=8, num_layers=layers(1))
    cfg.shared = OptimConfig(lr=0.05, schedule="cosine", lr_min=0.0, lr_T0=1, lr_T_mul=1, momentum=0.9,
                             weight_decay=3e-4, grad_clip=5.0)
    cfg.nas_updates, cfg.controller.num_aggregate, cfg.controller.hidden_size, cfg.controller.steps = 2, 4, 32, 3
    cfg.controller.memory_start_epoch, cfg.controller.memory_per_epoch, cfg.controller.memory_size = 1, 8, 8
    cfg.controller.memory_replace, cfg.controller.memory_loss_start_epoch, cfg.controller.memory_batch = 2, 2, 4
    cfg.sections = {"pnas": dict(beam=3, first_level=6, ensemble=2, predictor_epochs=5)}
    return cfg


def _train_tiny(task: str) -> TrainConfig:
    """Seconds: 3 cells of 8 filters, three 50-step epochs."""
    return TrainConfig(
        epochs=3, batch_size=32, eval_batch_size=100, max_steps=50, eval_max_batches=10, log_every=25,
        num_valid=0, model=ModelConfig(channels=8, num_layers=3, style="final"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.0, lr_T0=3, lr_T_mul=1, momentum=0.9,
                          weight_decay=3e-4, grad_clip=5.0),
    )


def _train_small(task: str) -> TrainConfig:
    """Final training on one machine (Fashion-MNIST, two CPU cores; README): N = 1 (3 cells, the
    searched children's depth) of 16 filters, 3 epochs of one cosine cycle. No auxiliary head (with 3
    cells it would sit on the last cell, beside the classifier), drop path or cutout (a run this short
    cannot afford them). Measured: 6 cells cost twice as much per step, and the 7x7 and 1x7-7x1 ops of
    the searched cells make a 6-cell network's 3 epochs more than 45 minutes on two cores."""
    return TrainConfig(
        epochs=3, batch_size=96, eval_batch_size=200, num_valid=0, log_every=50,
        model=ModelConfig(channels=16, num_layers=layers(1), style="final"),
        optim=OptimConfig(lr=0.05, schedule="cosine", lr_min=0.0, lr_T0=3, lr_T_mul=1, momentum=0.9,
                          weight_decay=3e-4, grad_clip=5.0),
    )


@register
class PnasSpace(TwoCellSpace):
    name = "pnas"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.darts_cnn"
    op_names = PNAS_OPS
    op_colors = OP_COLORS
    blocks_option = "num_blocks"
    cell_kinds = ("cell",)
    max_blocks = 8
    presets = {("search", "paper"): _search_paper, ("search", "small"): _search_small,
               ("search", "tiny"): _search_tiny, ("train", "paper"): _train_paper,
               ("train", "small"): _train_small, ("train", "tiny"): _train_tiny}
    defaults = {"num_blocks": 5}

    def outputs(self, blocks) -> list[int]:
        """Every block (pnasnet.py: the concatenation of all B blocks)."""
        return list(range(2, 2 + len(blocks)))

    # --- what the progressive search asks of the space ------------------------------------------
    @staticmethod
    def canonical(tokens) -> tuple[int, ...]:
        """The tokens with each block's two (input, op) pairs in order, smaller first: one arc per cell."""
        out = []
        for k in range(0, len(tokens), 4):
            a, b = tuple(tokens[k:k + 2]), tuple(tokens[k + 2:k + 4])
            out += [*min(a, b), *max(a, b)]
        return tuple(out)

    def blocks_for(self, b: int) -> list[tuple[int, int, int, int]]:
        """Every distinct block b (0-based) can add, in canonical order: unordered pairs of (input, op)
        with input in 0 .. b + 1."""
        pairs = [(i, o) for i in range(2 + b) for o in range(len(self.op_names))]
        return [(*p, *q) for p, q in itertools.combinations_with_replacement(pairs, 2)]

    def one_block_cells(self) -> list[Arch]:
        """The 136 distinct cells of one block (level 1 of PNAS)."""
        space = type(self)(num_blocks=1)
        return [Arch(space, blk) for blk in self.blocks_for(0)]

    def expansions(self, arch: Arch) -> list[Arch]:
        """Every cell of one block more than `arch` (a cell of b blocks), in canonical form."""
        b = arch.space.blocks
        space = type(self)(num_blocks=b + 1)
        return [Arch(space, arch.tokens + blk) for blk in self.blocks_for(b)]
