"""What the cell spaces share: cells of B blocks over the two cell inputs and the earlier blocks. The
ENAS micro space and DARTS's CNN space search two cells (a normal cell and a reduction cell); PNAS
searches one cell, used at stride 1 and, where the network reduces, at stride 2 (`cell_kinds`).

A cell has two inputs (nodes 0 and 1: the outputs of the two previous cells) and B blocks; block b
creates node 2 + b from two earlier nodes, each through one op, summed. The arc is the normal cell,
then the reduction cell, each B blocks of `index_1 op_1 index_2 op_2` (index: an earlier node of the
same cell; op: an index into the space's `op_names`); a one-cell space's arc is its one cell. Which
nodes a cell outputs is the space's own rule (`outputs`).

Decisions and the controller's anchors. Indices are `Predecessor` decisions over the cell's nodes:
the two inputs exist before any decision (`initial_anchors = 2`) and each block's last decision
(op_2) is marked `anchor=True`, so block b's indices see 2 + b anchors. The reduction cell is a
separate cell whose node 0 is again an input, so its anchors restart: `anchor_resets` holds the
index in `decisions` (equal to the token offset: every decision is one token) at which a controller
drops its anchors and creates `initial_anchors` new ones (the official ENAS micro controller samples
the two cells with the same LSTM, the second pass with fresh anchors).
"""
from __future__ import annotations

from typing import ClassVar

from . import drawing
from .base import SearchSpace, whole_option
from .decisions import Choice, Predecessor

CELLS = ("normal", "reduce")
TITLES = {"normal": "normal cell", "reduce": "reduction cell", "cell": "cell"}


class TwoCellSpace(SearchSpace):
    """A space of (normal, reduction) cells of `blocks` blocks, or of one cell that serves as both
    (`cell_kinds = ("cell",)`); subclasses name the ops and the output."""

    op_names: ClassVar[tuple[str, ...]]       # what the networks (enas/nn) build for each op token
    op_colors: ClassVar[dict[str, str]]       # the figure's colour of each op
    blocks_option: ClassVar[str]              # the option that counts a cell's blocks
    block_word: ClassVar[str] = "block"       # a block in decision names and drawings
    max_blocks: ClassVar[int] = 32
    cell_kinds: ClassVar[tuple[str, ...]] = CELLS  # the cells an arc holds, in its order
    initial_anchors = 2  # the two cell inputs

    @property
    def blocks(self) -> int:
        return self.options[self.blocks_option]

    def build_decisions(self):
        n, ops, w = self.blocks, self.op_names, self.block_word
        whole_option(self.name, self.blocks_option, n, 1, self.max_blocks)
        decisions = []
        for cell in self.cell_kinds:
            for b in range(n):
                p = f"{cell}.{w}{b}"
                decisions += [Predecessor(f"{p}.index1", 2 + b), Choice(f"{p}.op1", len(ops), ops),
                              Predecessor(f"{p}.index2", 2 + b), Choice(f"{p}.op2", len(ops), ops, anchor=True)]
        # the reduction cell (if any) starts after the normal cell's 4B decisions
        self.anchor_resets = tuple(4 * n * k for k in range(1, len(self.cell_kinds)))
        return decisions

    def infer_options(self, num_tokens: int) -> dict:
        per_block = 4 * len(self.cell_kinds)
        return {self.blocks_option: num_tokens // per_block} \
            if num_tokens >= per_block and num_tokens % per_block == 0 else {}

    # --- reading an architecture ---------------------------------------------------------------
    def cells(self, tokens) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
        """(normal, reduce): per block (index_1, op_1, index_2, op_2); a one-cell space's cell is both."""
        tokens, n = list(tokens), self.blocks
        blocks = [tuple(tokens[4 * k:4 * k + 4]) for k in range(len(self.cell_kinds) * n)]
        return (blocks[:n], blocks[n:]) if len(self.cell_kinds) == 2 else (blocks, blocks)

    def searched_cells(self, tokens) -> list[tuple[str, list[tuple[int, int, int, int]]]]:
        """(title, blocks) of each cell the arc holds, in its order: what `text` and `figure` show."""
        return [(TITLES[kind], blocks) for kind, blocks in zip(self.cell_kinds, self.cells(tokens))]

    def outputs(self, blocks) -> list[int]:
        """The nodes (0, 1 = inputs, 2 + b = block b) a cell of `blocks` concatenates into its output."""
        raise NotImplementedError

    # --- drawing -----------------------------------------------------------------------------
    def node_name(self, k: int) -> str:
        """Node k of a cell in words: the two inputs are the outputs of the two previous cells."""
        return ("c_{k-2}", "c_{k-1}")[k] if k < 2 else f"{self.block_word} {k - 2}"

    def text(self, tokens) -> str:
        """Per cell, one line per block, `block b = op_1(node) + op_2(node)`, and the concatenated output."""
        lines = [f"{self.name}, {self.blocks} {self.block_word}s per cell: {' '.join(map(str, tokens))}"]
        width = len(self.node_name(1 + self.blocks))
        for title, blocks in self.searched_cells(tokens):
            lines.append(f"{title}:")
            for b, (i1, o1, i2, o2) in enumerate(blocks):
                lines.append(f"  {self.node_name(2 + b):<{width}} = {self.op_names[o1]}({self.node_name(i1)}) + "
                             f"{self.op_names[o2]}({self.node_name(i2)})")
            outs = ", ".join(self.node_name(k) for k in self.outputs(blocks))
            lines.append(f"  {'output':<{width}} = concat({outs})")
        return "\n".join(lines)

    def figure(self, tokens):
        """The normal cell above the reduction cell (or the one cell), each a DAG left to right: the
        inputs c_{k-2} and c_{k-1}, every block's two ops feeding its add node (+), and dashed edges
        from the nodes the cell outputs into the concatenation."""
        cells = self.searched_cells(tokens)
        depths = [_block_depths(blocks) for _, blocks in cells]
        cw, rh = 0.95, 0.8  # inches per column (ops and adds alternate) / per block row
        last = max(max(d) for d in depths)
        width = max(0.6 + (2 * last + 1) * cw + 0.9, 9.0)  # at least the legend's width
        rows = max(2, self.blocks)
        panel = rows * rh + 0.45  # a cell's rows plus its title
        fig, ax = drawing.inch_axes(width, len(cells) * panel)
        for c, (title, blocks) in enumerate(cells):
            top = (len(cells) - c) * panel
            ax.text(0.1, top - 0.15, title, ha="left", va="top", fontsize=10, weight="bold")
            row_y = [top - 0.45 - rh * (r + 0.5) for r in range(rows)]
            self._draw_cell(ax, blocks, depths[c], row_y, cw, 0.6 + (2 * last + 1) * cw)
        drawing.caption(fig, f"{self.name}: {' '.join(map(str, tokens))}")
        drawing.legend(fig, [(op, dict(fc=color)) for op, color in self.op_colors.items()]
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
                name = self.op_names[blk[2 * slot + 1]]
                ops.append(drawing.box(ax, col_x(2 * d - 1), y + dy, name, self.op_colors[name], fontsize=7,
                                       style="round,pad=0.2"))
                drawing.arrow(ax, nodes[blk[2 * slot]], ops[-1], lw=0.9)
            add = drawing.box(ax, col_x(2 * d), y, "+", "white", fontsize=9, style="circle,pad=0.15")
            ax.text(col_x(2 * d), y + 0.2, self.node_name(2 + b), ha="center", va="bottom", fontsize=7)
            for op in ops:
                drawing.arrow(ax, op, add, lw=0.9)
            nodes.append(add)
        out = drawing.box(ax, out_x, sum(row_y[:len(blocks)]) / len(blocks), "concat", "white", fontsize=9)
        for k in self.outputs(blocks):
            drawing.arrow(ax, nodes[k], out, color=drawing.LOOSE_COLOR, linestyle=drawing.LOOSE_STYLE, lw=1.0)


def _block_depths(blocks) -> list[int]:
    """Depth of every node of a cell: 0 for the inputs, 1 + the deeper of its two inputs for a block."""
    depth = [0, 0]
    for i1, _, i2, _ in blocks:
        depth.append(1 + max(depth[i1], depth[i2]))
    return depth
