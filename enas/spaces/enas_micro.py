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

from .base import SearchSpace, register, whole_option
from .decisions import Choice, Predecessor

# Official op order (micro_child.py `_enas_cell`: sep 3x3, sep 5x5, avg pool, max pool, identity).
MICRO_OPS = ("sep3x3", "sep5x5", "avgpool3x3", "maxpool3x3", "identity")
CELLS = ("normal", "reduce")
MAX_BLOCKS = 32  # official: 5


@register
class EnasMicroSpace(SearchSpace):
    name = "enas_micro"
    tasks = ("cifar10", "fashion_mnist")
    models = "enas.nn.micro"
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

