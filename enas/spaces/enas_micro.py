"""The ENAS micro CNN space (Pham et al. 2018, section 2.4): a normal cell and a reduction cell.

Each cell has two inputs (nodes 0 and 1: the outputs of the two previous cells) and B blocks; block
b creates node 2 + b from two earlier nodes, each through one op, summed. Arc format of the official
ENAS code (src/cifar10/micro_controller.py, scripts/cifar10_micro_final.sh): the normal cell, then
the reduction cell, each B blocks of

    index_1 op_1 index_2 op_2                                   (8B numbers in all)

index in 0 .. 2+b-1 (an earlier node of the same cell), op in {0 sep3x3, 1 sep5x5, 2 avgpool3x3,
3 maxpool3x3, 4 identity}. A cell's output concatenates its loose ends: the nodes, inputs
included, that no block reads (official micro_child.py, `used`). The decisions, the controller's
anchors and the drawings are those of every two-cell space (enas/spaces/cells.py).
"""
from __future__ import annotations

from ..config import ControllerConfig, ModelConfig, SearchPreset, TrainConfig
from . import image_presets
from .base import register
from .cells import TwoCellSpace

# Official op order (micro_child.py `_enas_cell`: sep 3x3, sep 5x5, avg pool, max pool, identity).
MICRO_OPS = ("sep3x3", "sep5x5", "avgpool3x3", "maxpool3x3", "identity")
OP_COLORS = {"sep3x3": "#d9ead3", "sep5x5": "#b6d7a8", "avgpool3x3": "#fce5cd", "maxpool3x3": "#f9cb9c",
             "identity": "#eeeeee"}

# The controller's op-logit biases of this space (Controller `op_bias` / `op_bias_init`, used when
# ControllerConfig.op_bias is on). Fixed bias added to the op logits of the normal cell after tanh
# shaping, favouring the two separable convolutions (ops: 0 sep3x3, 1 sep5x5, 2 avgpool, 3 maxpool,
# 4 identity). Official ENAS src/cifar10/micro_controller.py `b_soft_no_learn` =
# [0.25, 0.25] + [-0.25] * (num_branches - 2).
MICRO_OP_BIAS = (0.25, 0.25, -0.25, -0.25, -0.25)
# Initial value of the learned op-logit bias of the same file (`b_soft` = [10, 10] + [0] * ...), added
# before the shaping in both cells.
MICRO_OP_BIAS_INIT = (10.0, 10.0, 0.0, 0.0, 0.0)


# --- presets (official scripts/cifar10_micro_{search,final}.sh; image_presets.py says what they share) --

def _search_paper(task: str) -> SearchPreset:
    return SearchPreset(
        space="enas_micro", space_options={"num_blocks": 5}, task=task,   # child_num_cells=5
        epochs=150, batch_size=160, eval_batch_size=160, shared_steps=0,
        num_valid=5000, log_every=50, derive_samples=100,
        model=ModelConfig(channels=20, num_layers=2, dropout=0.1, aux_head=True),  # 6 layers = 3 x 2
        shared=image_presets.cosine(lr_min=0.0005, l2=1e-4),
        controller=ControllerConfig(hidden_size=64, lr=0.0035, adam_beta1=0.0,
                                    temperature=0.0, tanh_constant=1.10, op_tanh_reduce=2.5, op_bias=True,
                                    entropy_weight=1e-4, baseline_decay=0.99, num_aggregate=10, steps=30,
                                    reward_c=1.0, init_range=0.1,
                                    anchors="own_step"),  # micro_controller.py: one step per block's anchor
    )


def _train_paper(task: str) -> TrainConfig:
    return TrainConfig(task=task, epochs=630, batch_size=144, eval_batch_size=100, num_valid=0,
                       cutout=16,  # paper: "ENAS + micro search space + CutOut" (the script sets none)
                       model=ModelConfig(channels=36, num_layers=5, dropout=0.2, drop_path=0.4,  # keep 0.8, 0.6
                                         aux_head=True, style="final"),
                       optim=image_presets.cosine(lr_min=0.0001, l2=2e-4))


# One cell per stage at toy sizes; the op shaping, op biases and anchors of the paper preset.
def _search_tiny(task: str) -> SearchPreset:
    return image_presets.search_tiny("enas_micro", {"num_blocks": 2}, cells_per_stage=1, controller=dict(
        skip_weight=0.0, op_tanh_reduce=2.5, op_bias=True, anchors="own_step"))


def _train_tiny(task: str) -> TrainConfig:
    return image_presets.train_tiny(cells_per_stage=1, aux_head=True)


def _search_small(task: str) -> SearchPreset:
    return image_presets.search_small(_search_paper(task), {"num_blocks": 3}, cells_per_stage=1)


def _train_small(task: str) -> TrainConfig:
    return image_presets.train_small(channels=16, cells_per_stage=1, aux_head=True)


@register
class EnasMicroSpace(TwoCellSpace):
    name = "enas_micro"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.micro"
    op_names = MICRO_OPS
    op_colors = OP_COLORS
    blocks_option = "num_blocks"
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    controller_options = {"op_bias": MICRO_OP_BIAS, "op_bias_init": MICRO_OP_BIAS_INIT}
    # 5 blocks per cell: official scripts/cifar10_micro_search.sh (--child_num_cells=5).
    defaults = {"num_blocks": 5}

    @staticmethod
    def loose_ends(blocks) -> list[int]:
        """Nodes (0, 1 = inputs, 2 + b = block b) that no block reads: the cell output, in order."""
        used = {i for blk in blocks for i in (blk[0], blk[2])}
        return [k for k in range(2 + len(blocks)) if k not in used]

    def outputs(self, blocks) -> list[int]:
        return self.loose_ends(blocks)
