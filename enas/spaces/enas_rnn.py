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

from ..errors import ArchError
from .base import SearchSpace, register, whole_option
from .decisions import Choice, Predecessor

ACTIVATIONS = ("tanh", "relu", "identity", "sigmoid")
MAX_NODES = 64  # paper: 12


@register
class EnasRNNSpace(SearchSpace):
    name = "enas_rnn"
    tasks = ("ptb",)
    models = "enas.nn.rnn_lm"
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
