"""The ENAS micro CNN space (Pham et al. 2018, section 2.4): a normal cell and a reduction cell.

Each cell has two inputs (nodes 0 and 1: the outputs of the two previous cells) and B blocks; block
b creates node 2 + b from two earlier nodes, each through one op, summed. Arc format of the official
ENAS code (src/cifar10/micro_controller.py, scripts/cifar10_micro_final.sh): the normal cell, then
the reduction cell, each B blocks of

    index_1 op_1 index_2 op_2                                   (8B numbers in all)

index in 0 .. 2+b-1 (an earlier node of the same cell), op in {0 sep3x3, 1 sep5x5, 2 avgpool3x3,
3 maxpool3x3, 4 identity}. A cell's output concatenates its loose ends: the nodes, inputs
included, that no block reads (official micro_child.py, `used`).

Decisions and the controller's anchors. Indices are `Predecessor` decisions over the cell's
nodes: the two inputs exist before any decision (`initial_anchors = 2`) and each block's last
decision (op_2) is marked `anchor=True`, so block b's indices see 2 + b anchors.

The reduction cell is a separate cell whose node 0 is again an input, so its anchors restart.
The official controller samples the two cells with the same LSTM, twice: the second pass starts
with the LSTM state the first one ended with, but with fresh anchors (two new warm-up steps for
the inputs) and the start embedding as input (micro_controller.py, `_build_sampler(prev_c, prev_h)`).
`anchor_resets` holds the index in `decisions` (equal to the token offset here: every decision is
one token) at which a controller drops its anchors and creates `initial_anchors` new ones;
without it a controller would point the reduction cell's indices at the normal cell's nodes.
"""
from __future__ import annotations

from ..config import ControllerConfig, ModelConfig, SearchPreset, TrainConfig
from . import drawing, image_presets
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Predecessor

# Official op order (micro_child.py `_enas_cell`: sep 3x3, sep 5x5, avg pool, max pool, identity).
MICRO_OPS = ("sep3x3", "sep5x5", "avgpool3x3", "maxpool3x3", "identity")
CELLS = ("normal", "reduce")
MAX_BLOCKS = 32  # official: 5
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
class EnasMicroSpace(SearchSpace):
    name = "enas_micro"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.micro"
    op_names = MICRO_OPS  # what the networks (enas/nn) build for each op token
    presets = {("search", "paper"): _search_paper, ("search", "tiny"): _search_tiny,
               ("search", "small"): _search_small, ("train", "paper"): _train_paper,
               ("train", "tiny"): _train_tiny, ("train", "small"): _train_small}
    controller_options = {"op_bias": MICRO_OP_BIAS, "op_bias_init": MICRO_OP_BIAS_INIT}
    # 5 blocks per cell: official scripts/cifar10_micro_search.sh (--child_num_cells=5).
    defaults = {"num_blocks": 5}
    initial_anchors = 2  # the two cell inputs

    def build_decisions(self):
        n = self.options["num_blocks"]
        whole_option(self.name, "num_blocks", n, 1, MAX_BLOCKS)
        decisions = []
        for cell in CELLS:
            for b in range(n):
                p = f"{cell}.block{b}"
                decisions += [Predecessor(f"{p}.index1", 2 + b),
                              Choice(f"{p}.op1", len(MICRO_OPS), MICRO_OPS),
                              Predecessor(f"{p}.index2", 2 + b),
                              Choice(f"{p}.op2", len(MICRO_OPS), MICRO_OPS, anchor=True)]
        # The reduction cell starts after the normal cell's 4B decisions (see the module docstring).
        self.anchor_resets = (4 * n,)
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        return {"num_blocks": num_tokens // 8} if num_tokens >= 8 and num_tokens % 8 == 0 else {}

    # --- reading an architecture ---------------------------------------------------------------
    def cells(self, tokens) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
        """(normal, reduce): per block (index_1, op_1, index_2, op_2)."""
        tokens, n = list(tokens), self.options["num_blocks"]
        blocks = [tuple(tokens[4 * k:4 * k + 4]) for k in range(2 * n)]
        return blocks[:n], blocks[n:]

    @staticmethod
    def loose_ends(blocks) -> list[int]:
        """Nodes (0, 1 = inputs, 2 + b = block b) that no block reads: the cell output, in order."""
        used = {i for blk in blocks for i in (blk[0], blk[2])}
        return [k for k in range(2 + len(blocks)) if k not in used]


    # --- drawing -----------------------------------------------------------------------------
    @staticmethod
    def node_name(k: int) -> str:
        """Node k of a cell in words: the two inputs are the outputs of the two previous cells."""
        return ("c_{k-2}", "c_{k-1}")[k] if k < 2 else f"block {k - 2}"

    def text(self, tokens) -> str:
        """Per cell, one line per block, `block b = op_1(node) + op_2(node)`, and the concatenated output."""
        lines = [f"{self.name}, {self.options['num_blocks']} blocks per cell: {' '.join(map(str, tokens))}"]
        width = len(f"block {self.options['num_blocks'] - 1}")
        for title, blocks in zip(("normal cell", "reduction cell"), self.cells(tokens)):
            lines.append(f"{title}:")
            for b, (i1, o1, i2, o2) in enumerate(blocks):
                lines.append(f"  {f'block {b}':<{width}} = {MICRO_OPS[o1]}({self.node_name(i1)}) + "
                             f"{MICRO_OPS[o2]}({self.node_name(i2)})")
            outs = ", ".join(self.node_name(k) for k in self.loose_ends(blocks))
            lines.append(f"  {'output':<{width}} = concat({outs})")
        return "\n".join(lines)

    def figure(self, tokens):
        """The normal cell above the reduction cell, each a DAG left to right: the inputs c_{k-2} and
        c_{k-1}, every block's two ops feeding its add node (+), and dashed edges from the loose ends
        into the output concatenation."""
        cells = self.cells(tokens)
        depths = [_block_depths(blocks) for blocks in cells]
        cw, rh = 0.95, 0.8  # inches per column (ops and adds alternate) / per block row
        last = max(max(d) for d in depths)
        width = max(0.6 + (2 * last + 1) * cw + 0.9, 9.0)  # at least the legend's width
        rows = max(2, self.options["num_blocks"])
        panel = rows * rh + 0.45  # a cell's rows plus its title
        fig, ax = drawing.inch_axes(width, 2 * panel)
        for c, (title, blocks) in enumerate(zip(("normal cell", "reduction cell"), cells)):
            top = (2 - c) * panel
            ax.text(0.1, top - 0.15, title, ha="left", va="top", fontsize=10, weight="bold")
            row_y = [top - 0.45 - rh * (r + 0.5) for r in range(rows)]
            self._draw_cell(ax, blocks, depths[c], row_y, cw, 0.6 + (2 * last + 1) * cw)
        drawing.caption(fig, f"{self.name}: {' '.join(map(str, tokens))}")
        drawing.legend(fig, [(op, dict(fc=color)) for op, color in OP_COLORS.items()]
                       + [("into the output", dict(color=drawing.LOOSE_COLOR, ls=drawing.LOOSE_STYLE))])
        return fig

    def _draw_cell(self, ax, blocks, depth, row_y, cw, out_x) -> None:
        """One cell: node k at column 2 * depth[k] (inputs at 0), block b's ops in the column before
        its add node, on block b's row."""
        def col_x(col: int) -> float:
            return 0.6 + col * cw

        nodes = [drawing.box(ax, col_x(0), row_y[k], f"${self.node_name(k)}$", "white", fontsize=9) for k in (0, 1)]
        for b, blk in enumerate(blocks):
            d, y = depth[2 + b], row_y[b]
            ops = []
            for slot, dy in ((0, 0.19), (1, -0.19)):
                name = MICRO_OPS[blk[2 * slot + 1]]
                ops.append(drawing.box(ax, col_x(2 * d - 1), y + dy, name, OP_COLORS[name], fontsize=7,
                                       style="round,pad=0.2"))
                drawing.arrow(ax, nodes[blk[2 * slot]], ops[-1], lw=0.9)
            add = drawing.box(ax, col_x(2 * d), y, "+", "white", fontsize=9, style="circle,pad=0.15")
            ax.text(col_x(2 * d), y + 0.2, f"block {b}", ha="center", va="bottom", fontsize=7)
            for op in ops:
                drawing.arrow(ax, op, add, lw=0.9)
            nodes.append(add)
        out = drawing.box(ax, out_x, sum(row_y[:len(blocks)]) / len(blocks), "concat", "white", fontsize=9)
        for k in self.loose_ends(blocks):
            drawing.arrow(ax, nodes[k], out, color=drawing.LOOSE_COLOR, linestyle=drawing.LOOSE_STYLE, lw=1.0)


def _block_depths(blocks) -> list[int]:
    """Depth of every node of a cell: 0 for the inputs, 1 + the deeper of its two inputs for a block."""
    depth = [0, 0]
    for i1, _, i2, _ in blocks:
        depth.append(1 + max(depth[i1], depth[i2]))
    return depth
