"""Recurrent language models: the cell-agnostic base (`RecurrentLM`), and the ENAS cell's supernet
over `enas_rnn` and its standalone child.

Every recurrent LM is: embedding [V,H] -> cell -> decoder tied to the embedding (Inan et al.; official
ENAS `_get_log_probs` multiplies by w_emb^T) plus a per-word bias [V]; a subclass supplies the cell
(`_recur`). The ENAS cell (enas/nn/rnn_cell.py) has no biases (the official cell has none); the
tree cells of `nas_rnn` live in enas/nn/tree_lm.py.

The decoder bias is what lets the shared weights learn at the paper's lr 20: it carries the unigram
distribution from the first steps (ENAS-pytorch's decoder is an `nn.Linear` with bias, zero at init;
so is word_language_model's). Without it the tied decoder has to express word frequencies through
the embedding rows, and at lr 20 the paper preset's shared loss hovered near uniform (ln 10,000 =
9.2) for the first hundred steps; with it, it reaches 7.05 by step 100 at hidden 200, where ENAS-pytorch
reaches 7.18 (benchmarks/learning_curve.py).
The official search code had no bias but batch-normalised the cell output (whose offset plays a
similar part); `decoder_bias=False` gives the bias-free model.

The supernet holds ONE weight per possible edge (j, i), j < i, stacked as `w_edges`
[N(N-1)/2, H, 2H] with edge index e(j, i) = i(i-1)/2 + j; a forward gathers the N-1 sampled edges
once (not per step) from the architecture tensor. The child holds only its arch's N-1 edges as
`w_nodes` [N-1, H, 2H]; both run the same cell function, so a child step inside the supernet costs
what the standalone child costs.

Row-sparse shared updates: of the E stacked edge weights a step reads N-1 (11 of 66 at 12 nodes), yet
a dense gradient and a dense SGD step with weight decay read and write all E. Once the shared
optimiser asks for it (enas/optim.py `make_sgd`: plain SGD on one process), the gathered rows' gradient
is a sparse tensor holding those rows only, and the weight decay owed by the rows a step does not read
is kept by a `LazyRowDecay` ledger (`w_edges_decay`, enas/nn/row_decay.py) instead of being applied
to them: the stored `w_edges` rows are then "decay pending" and every reader of the weights goes through `edge_weights`
(what the forward does) or calls `materialize()` first. The arithmetic equals the dense step's (see
`LazyRowDecay`), and a checkpoint holds the stored rows with the ledger, so a resumed run continues
with the very same numbers.

Dropout follows the official search recipe (hparams: OFF ptb_search.sh, google-research enas_lm):
word dropout on embedding rows (dropout_e), variational masks on the cell input x (dropout_x), on
h_{t-1} and every node's input (dropout_h) and on the output (dropout_o), each drawn once per
forward call, none in eval mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..arch import Arch
from ..errors import ArchError, ConfigError
from .param_map import ParamSlice
from .rnn_cell import cell_forward, naive_cell_forward
from .row_decay import LazyRowDecay


def edge_index(j: int, i: int) -> int:
    """Row of edge (j -> i), j < i, in the stacked edge weights."""
    return i * (i - 1) // 2 + j


def default_init_range(hidden_size: int) -> float:
    # official ENAS src/ptb/ptb_enas_child.py `_build_params`: <=300 -> 0.1, <=400 -> 0.05, else 0.04
    # (google-research enas_lm uses 0.04 throughout).
    if hidden_size <= 300:
        return 0.1
    if hidden_size <= 400:
        return 0.05
    return 0.04


def _variational_mask(p: float, shape, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli keep-mask scaled by 1/(1-p), drawn once and reused at every step."""
    return torch.bernoulli(like.new_full(shape, 1.0 - p)).div_(1.0 - p)


class RecurrentLM(nn.Module):
    """A word-level language model around any recurrent cell: what every cell's supernet and child share.

    embedding [V,H] -> dropouts -> `_recur` (the cell, supplied by a subclass) -> output dropout ->
    decoder tied to the embedding plus a per-word bias [V]. The recurrent state is one tensor
    [B, state_size * H] (the task detaches and checkpoints it as a tensor); the decoder reads the
    [T,B,H] cell outputs `_recur` returns.
    """

    state_size = 1  # the recurrent state holds this many [B,H] blocks

    def __init__(self, space, vocab_size: int, hidden_size: int, dropout_e: float = 0.0,
                 dropout_x: float = 0.0, dropout_h: float = 0.0, dropout_o: float = 0.0,
                 max_hidden_norm: float | None = None, init_range: float | None = None,
                 decoder_bias: bool = True, dropout_i: float = 0.0, style: str = "search"):
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("hidden_size", hidden_size)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("dropout_e", dropout_e), ("dropout_x", dropout_x), ("dropout_h", dropout_h),
                        ("dropout_o", dropout_o), ("dropout_i", dropout_i)):
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {v!r}")
        if style not in ("search", "final"):
            raise ConfigError(f"style must be 'search' or 'final', got {style!r}")
        if max_hidden_norm is not None and not max_hidden_norm > 0:
            raise ConfigError(f"max_hidden_norm must be positive or None, got {max_hidden_norm!r}")
        self.space = space
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.dropout_e, self.dropout_x, self.dropout_h, self.dropout_o = dropout_e, dropout_x, dropout_h, dropout_o
        self.dropout_i, self.style = dropout_i, style  # (a cell with one style ignores it)
        self.max_hidden_norm = max_hidden_norm
        self.init_range = default_init_range(hidden_size) if init_range is None else init_range
        self.embedding = nn.Embedding(vocab_size, hidden_size)  # also the decoder (tied)
        # Registration order is initialisation order (reset_parameters draws in it), so the cell's
        # shared weights come between the embedding and the decoder bias, as they always have.
        self._make_cell_parameters()
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size)) if decoder_bias else None  # [V]

    def _make_cell_parameters(self) -> None:
        """Create the weights every architecture's cell reads (called once, from __init__)."""

    def reset_parameters(self) -> None:
        r = self.init_range
        for p in self.parameters():
            nn.init.uniform_(p, -r, r)
        if self.decoder_bias is not None:
            nn.init.zeros_(self.decoder_bias)  # ENAS-pytorch RNN.reset_parameters: decoder bias 0

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        """The zero recurrent state [B, state_size * H]."""
        return self.embedding.weight.new_zeros(batch_size, self.state_size * self.hidden_size)

    # -- the cell, supplied by a subclass -----------------------------------------------------------
    def _recur(self, x: torch.Tensor, hidden: torch.Tensor, arch, mask_h: torch.Tensor | None):
        """x [T,B,H] (dropouts applied), hidden [B, state_size*H], mask_h [B,H] or None
        -> (cell outputs [T,B,H], next hidden [B, state_size*H])."""
        raise NotImplementedError

    # -- forward ----------------------------------------------------------------------------------
    def _lm_forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None, arch):
        if tokens.dim() != 2:
            raise ConfigError(f"tokens must be [T, B], got shape {tuple(tokens.shape)}")
        T, B = tokens.shape
        if hidden is None:
            hidden = self.init_hidden(B)
        W = self.embedding.weight
        train = self.training
        # All masks drawn here, once per forward and in a fixed order, so that every cell
        # implementation (fast, reference) sees the same ones under the same seed.
        mask_e = _variational_mask(self.dropout_e, (self.vocab_size,), W) if train and self.dropout_e else None
        mask_x = _variational_mask(self.dropout_x, (B, self.hidden_size), W) if train and self.dropout_x else None
        mask_h = _variational_mask(self.dropout_h, (B, self.hidden_size), W) if train and self.dropout_h else None
        mask_o = _variational_mask(self.dropout_o, (B, self.hidden_size), W) if train and self.dropout_o else None
        mask_i = _variational_mask(self.dropout_i, (B, self.hidden_size), W) if train and self.dropout_i else None

        x = F.embedding(tokens, W)  # [T,B,H]
        if mask_e is not None:  # drop whole words: row v of the embedding for every occurrence
            x = x * mask_e[tokens].unsqueeze(-1)
        if mask_i is not None:  # the embedding output, one mask per batch (AWD-LSTM's dropouti)
            x = x * mask_i
        if mask_x is not None:
            x = x * mask_x
        out, new_hidden = self._recur(x, hidden, arch, mask_h)
        if mask_o is not None:
            out = out * mask_o
        logits = F.linear(out, W, self.decoder_bias)  # [T,B,V], tied decoder
        return logits, new_hidden

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
                f"dropout_e={self.dropout_e}, dropout_x={self.dropout_x}, dropout_h={self.dropout_h}, "
                f"dropout_o={self.dropout_o}, max_hidden_norm={self.max_hidden_norm}, "
                f"decoder_bias={self.decoder_bias is not None}")


def arch_tokens(model: RecurrentLM, arch) -> torch.Tensor:
    """`arch` (an Arch of the model's space, or a LongTensor [L] of its tokens) as a LongTensor on the
    model's device; anything else is an ArchError."""
    device = model.embedding.weight.device
    if isinstance(arch, Arch):
        if arch.space != model.space:
            raise ArchError(f"architecture of {arch.space!r} given to a supernet of {model.space!r}")
        return arch.tensor(device)
    if isinstance(arch, torch.Tensor):
        if arch.shape != (model.space.num_tokens,):
            raise ArchError(f"arch tensor must have shape [{model.space.num_tokens}], got {tuple(arch.shape)}")
        return arch.to(device, torch.long)
    raise ArchError(f"arch must be an Arch or a LongTensor of tokens, got {type(arch).__name__}")


class _EnasLM(RecurrentLM):
    """The ENAS cell's shared parts: node 0's weights w_x, w_h0 [H,2H] and the output weights."""

    def __init__(self, space, vocab_size: int, hidden_size: int, reference: bool = False, **kw):
        if getattr(space, "models", None) != __name__:  # a space whose registration names this module
            raise ConfigError(f"the ENAS recurrent LM builds the spaces whose models are {__name__}, "
                              f"not {getattr(space, 'name', space)!r}")
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.num_nodes = N = space.num_nodes
        self.reference = reference
        # Output weights when every node is averaged: read from the space so both agree.
        if space.output == "all":
            # (0/1 masks are stored, and weights formed in the model's dtype: 1/k in float32 is not 1/k in float64)
            all_nodes = torch.zeros(N)
            all_nodes[space.loose_ends(space.sample(seed=0).tokens)] = 1.0
            self.register_buffer("all_nodes", all_nodes, persistent=False)

    def _make_cell_parameters(self) -> None:
        H = self.hidden_size
        self.w_x = nn.Parameter(torch.empty(H, 2 * H))  # node 0: x_t -> [h, c]
        self.w_h0 = nn.Parameter(torch.empty(H, 2 * H))  # node 0: h_{t-1} -> [h, c]

    # -- the part that differs between supernet and child ------------------------------------------
    def _cell_inputs(self, arch):
        """(w_nodes [N-1,H,2H], prev [N-1], act [N], out_w [N]) as tensors, without host syncs."""
        raise NotImplementedError

    def _naive_inputs(self, arch):
        """(w_nodes list of [H,2H], prev, act, loose) with Python ints, for the reference cell."""
        raise NotImplementedError

    def _recur(self, x, hidden, arch, mask_h):
        xproj = torch.matmul(x, self.w_x)  # [T,B,2H], all steps in one matmul
        if self.reference:
            w_nodes, prev, act, loose = self._naive_inputs(arch)
            out = naive_cell_forward(xproj, hidden, self.w_h0, w_nodes, prev, act, loose, mask_h,
                                     self.max_hidden_norm)
        else:
            w_nodes, prev, act, out_w = self._cell_inputs(arch)
            out = cell_forward(xproj, hidden, self.w_h0, w_nodes, prev, act, out_w, mask_h,
                               self.max_hidden_norm)
        return out, out[-1]

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, {super().extra_repr()}, reference={self.reference}"


class RNNSupernet(_EnasLM):
    """Shared weights of every cell of an `enas_rnn` space: `supernet(tokens, hidden, arch)`."""

    device_arch = True  # the architecture is only indexed with on the device: one graph serves every arch
    scores_many = True  # n architectures run as one batched recurrence (rnn_batched.mean_cross_entropy)

    def __init__(self, space, vocab_size: int, hidden_size: int, **kw):
        super().__init__(space, vocab_size, hidden_size, **kw)
        N, H = self.num_nodes, hidden_size
        self.num_edges = N * (N - 1) // 2
        self.w_edges = nn.Parameter(torch.empty(self.num_edges, H, 2 * H))  # row e(j,i): edge j -> i
        # Token positions of the decisions, so the forward decodes an arch tensor by indexing.
        prev_pos, act_pos = space.positions("node", ".prev"), space.positions("node", ".act")
        self.register_buffer("prev_pos", torch.tensor(prev_pos, dtype=torch.long), persistent=False)
        self.register_buffer("act_pos", torch.tensor(act_pos, dtype=torch.long), persistent=False)
        self.fixed_first_act = space.first_act == "tanh"  # node 0 is tanh (0) and has no token
        self.register_buffer("edge_base", torch.tensor([edge_index(0, i) for i in range(1, N)], dtype=torch.long),
                             persistent=False)
        # The decay the rows of w_edges still owe (empty until row-sparse updates are turned on).
        self.w_edges_decay = LazyRowDecay(self.num_edges)
        self.row_sparse = False  # see use_row_sparse_gradients
        self.register_load_state_dict_post_hook(RNNSupernet._after_load)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.w_edges_decay.reset(self.w_edges)

    # -- row-sparse updates (module docstring) ----------------------------------------------------
    def use_row_sparse_gradients(self, on: bool) -> dict:
        """Turn row-sparse gradients of `w_edges` on or off; returns {w_edges: its LazyRowDecay} when
        on, for the optimiser that then owns the lazy decay (enas/optim.py `make_sgd`), else {}.
        Turning it off first writes any pending decay into the weights."""
        if not on:
            self.materialize()
        self.row_sparse = bool(on)
        return {self.w_edges: self.w_edges_decay} if on else {}

    def materialize(self) -> None:
        """Apply all pending weight decay to `w_edges` in place, so that it holds the true weights.

        Call it before reading `w_edges` other than through `edge_weights` or a forward (inheritance
        does, through `param_map`). Between optimiser steps it costs one pass over w_edges, and none
        when nothing is pending. It changes the stored numbers (not the weights they stand for), so
        a run that must resume to the bit calls it at the same points on every run."""
        self.w_edges_decay.materialize(self.w_edges)

    def edge_weights(self, rows: torch.Tensor, distinct: bool = False) -> torch.Tensor:
        """The true weights of edge rows `rows` [n] long: [n,H,2H]. Their gradient is a sparse tensor
        of the gathered rows when row-sparse gradients are on, else a dense one. `distinct`: no row
        repeats in `rows` (the caller knows it; it spares the optimiser summing repeats)."""
        if self.row_sparse:
            return self.w_edges_decay.gather(self.w_edges, rows, distinct)
        # (off, nothing is pending: turning it off and loading a state_dict materialise)
        return self.w_edges.index_select(0, rows)

    @staticmethod
    def _after_load(module: "RNNSupernet", incompatible) -> None:
        if not module.row_sparse:  # only the row-sparse forward reads through the ledger
            module.materialize()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A state_dict from before the ledger existed, or from a run with dense updates (a CUDA-graphed
        # search, which never keeps the ledger's row norms), holds true rows and a ledger that owes
        # nothing: it gets an empty ledger of its own rows' norms, so a row-sparse resume is exact.
        key, weight = prefix + "w_edges_decay.", state_dict.get(prefix + "w_edges")
        if weight is not None and (key + "log_scale" not in state_dict or LazyRowDecay.owes_nothing(state_dict, key)):
            state_dict.update(self.w_edges_decay.fresh_state(weight, key))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- forward ----------------------------------------------------------------------------------
    def _cell_inputs(self, arch):
        tokens = arch_tokens(self, arch)
        prev = tokens.index_select(0, self.prev_pos)  # [N-1]
        act = tokens.index_select(0, self.act_pos)
        if self.fixed_first_act:
            act = torch.cat([act.new_zeros(1), act])  # [N]
        # node i reads an edge e(j, i), j < i: the rows of distinct nodes lie in disjoint ranges
        w_nodes = self.edge_weights(self.edge_base + prev, distinct=True)  # [N-1,H,2H], gathered once
        if self.space.output == "all":
            loose = self.all_nodes.to(self.w_h0.dtype)
        else:  # loose ends: nodes that no node reads, found by a scatter (no host sync)
            read = torch.zeros(self.num_nodes, dtype=self.w_h0.dtype, device=prev.device)
            read.scatter_(0, prev, 1.0)
            loose = 1.0 - read
        out_w = loose / loose.sum()
        return w_nodes, prev, act, out_w

    def _naive_inputs(self, arch):
        tokens = arch.tokens if isinstance(arch, Arch) else tuple(arch_tokens(self, arch).tolist())
        prev, act = self.space.cell(tokens)
        self.materialize()  # the reference reads the stored rows themselves
        w_nodes = [self.w_edges[edge_index(prev[i], i)] for i in range(1, self.num_nodes)]
        return w_nodes, prev, act, self.space.loose_ends(tokens)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None, arch):
        """tokens [T,B] long, hidden [B,H] or None, arch: Arch or LongTensor[L] -> (logits [T,B,V], hidden [B,H])."""
        return self._lm_forward(tokens, hidden, arch)


class RNNChild(_EnasLM):
    """A standalone model of one architecture, holding only that architecture's weights."""

    def __init__(self, space, arch, vocab_size: int, hidden_size: int, **kw):
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.arch = arch = Arch.of(space, arch)
        N, H = self.num_nodes, hidden_size
        self.w_nodes = nn.Parameter(torch.empty(N - 1, H, 2 * H))  # node i reads w_nodes[i-1]
        prev, act = space.cell(arch.tokens)
        loose = space.loose_ends(arch.tokens)
        loose_mask = torch.zeros(N)
        loose_mask[loose] = 1.0
        self.register_buffer("prev", torch.tensor(prev[1:], dtype=torch.long), persistent=False)
        self.register_buffer("act", torch.tensor(act, dtype=torch.long), persistent=False)
        self.register_buffer("loose_mask", loose_mask, persistent=False)
        self.reset_parameters()

    def _cell_inputs(self, arch):
        loose = self.loose_mask.to(self.w_h0.dtype)
        return self.w_nodes, self.prev, self.act, loose / loose.sum()

    def _naive_inputs(self, arch):
        prev, act = self.space.cell(self.arch.tokens)
        return list(self.w_nodes.unbind(0)), prev, act, self.space.loose_ends(self.arch.tokens)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None):
        """tokens [T,B] long, hidden [B,H] or None -> (logits [T,B,V], hidden [B,H])."""
        return self._lm_forward(tokens, hidden, self.arch)


def supernet(space, **kw) -> RNNSupernet:
    return RNNSupernet(space, **kw)


def child(space, arch, **kw) -> RNNChild:
    return RNNChild(space, arch, **kw)


def param_map(child_net: RNNChild, supernet_net: RNNSupernet) -> list[ParamSlice]:
    """Every child tensor's place in the supernet: the shared parts as they are, and node i's weights
    `w_nodes[i-1]` as the row of edge (prev(i) -> i) of `w_edges`. The slices are read from the
    supernet's state_dict, so its pending weight decay is applied first."""
    supernet_net.materialize()
    if (child_net.decoder_bias is None) != (supernet_net.decoder_bias is None):
        raise ConfigError("supernet and child differ in decoder_bias")
    shared = ["embedding.weight", "w_x", "w_h0"] + (["decoder_bias"] if child_net.decoder_bias is not None else [])
    slices = [ParamSlice(name, name) for name in shared]
    prev, _ = child_net.space.cell(child_net.arch.tokens)
    slices += [ParamSlice("w_nodes", "w_edges", (edge_index(prev[i], i),), (i - 1,))
               for i in range(1, child_net.num_nodes)]
    if child_net.num_nodes == 1:  # no edges: both hold an empty [0,H,2H] tensor
        slices.append(ParamSlice("w_nodes", "w_edges"))
    return slices
