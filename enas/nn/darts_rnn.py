"""Language models of the `darts_rnn` space (official quark0/darts rnn/model.py, model_search.py): one
supernet, searched either way, and the standalone child, on the recurrent LM every cell shares
(enas/nn/rnn_lm.py `RecurrentLM`: tied decoder with a zero-initialised bias, word, embedding-output,
input, hidden and output dropout, each mask drawn once per batch as the official LockedDropout).

Weights (model.py DARTSCell): W_0 [H_x + H, 2H] as w_x [H, 2H] and w_h0 [H, 2H], and one W_i [H, 2H] per
node, `w_nodes` [N, H, 2H], whatever the node reads. A node's pre-activation is [c, h] (c first, as
the official split). So a child holds exactly the supernet's weights.

- supernet(tokens, hidden, arch): arch an Arch or LongTensor [L]: each node reads its one chosen
  predecessor through its chosen activation (what ENAS and random search train);
  supernet(tokens, hidden, weights): weights float [E, 5], the mixing weights softmax(alpha): node i
  is the weighted sum, over every earlier node j and every op but `none`, of s_j + c_j (f(h_j) - s_j)
  with [c_j, h_j] = (s_j * m_h) W_i (model_search.py DARTSCellSearch.cell).
- Style "search" batch-normalises node 0 and every node (model_search.py: BatchNorm1d, affine off);
  with batch statistics in every mode, as the image supernets (one set serves every architecture).
  Style "final" (model.py DARTSCell) has no batch norm.

The cell runs as plain autograd over time steps and nodes (no fused path as the ENAS cell has).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arch import Arch
from ..errors import ConfigError
from .param_map import ParamSlice
from .rnn_lm import RecurrentLM, arch_tokens

ACTIVATIONS = (torch.tanh, torch.relu, torch.sigmoid, lambda z: z)  # tanh, relu, sigmoid, identity


class _DartsLM(RecurrentLM):
    """What supernet and child share: the weights, the batch norm of the search style, the cell."""

    def __init__(self, space, vocab_size: int, hidden_size: int, **kw):
        if getattr(space, "models", None) != __name__:
            raise ConfigError(f"the DARTS recurrent LM builds the spaces whose models are {__name__}, "
                              f"not {getattr(space, 'name', space)!r}")
        self.num_nodes = space.num_nodes
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.bn = nn.BatchNorm1d(hidden_size, affine=False, track_running_stats=False) \
            if self.style == "search" else None
        self.reset_parameters()

    def _make_cell_parameters(self) -> None:
        H = self.hidden_size
        self.w_x = nn.Parameter(torch.empty(H, 2 * H))    # W_0, the x_t rows: x_t -> [c_0, h_0]
        self.w_h0 = nn.Parameter(torch.empty(H, 2 * H))   # W_0, the h_{t-1} rows
        self.w_nodes = nn.Parameter(torch.empty(self.num_nodes, H, 2 * H))  # W_i of node i = 1..N

    def _norm(self, s: torch.Tensor) -> torch.Tensor:
        return s if self.bn is None else self.bn(s)

    def _recur(self, x, hidden, arch, mask_h):
        """x [T,B,H], hidden [B,H], arch: (prev, act) lists or mixing weights [E, 5]."""
        H, N = self.hidden_size, self.num_nodes
        xproj = torch.matmul(x, self.w_x)  # [T,B,2H], all steps in one matmul
        relaxed = isinstance(arch, torch.Tensor)
        outs, h = [], hidden
        for t in range(x.shape[0]):
            z = xproj[t] + (h if mask_h is None else h * mask_h) @ self.w_h0
            states = [self._norm(h + torch.sigmoid(z[:, :H]) * (torch.tanh(z[:, H:]) - h))]  # node 0
            for i in range(1, N + 1):
                w = self.w_nodes[i - 1]
                if relaxed:
                    S = torch.stack(states)  # [i,B,H]: every earlier node
                    ch = ((S if mask_h is None else S * mask_h) @ w)  # [i,B,2H]
                    c, hh = torch.sigmoid(ch[..., :H]), ch[..., H:]
                    mix = arch[(i - 1) * i // 2:(i - 1) * i // 2 + i, 1:, None, None]  # [i,4,1,1] no none
                    # sum_k w_k (S + c (f_k(h) - S)) = W S + c (A - W S), W = sum_k w_k, A = sum_k w_k f_k(h):
                    # the official loop's sum over ops, with one highway update instead of one per op
                    A = sum(mix[:, k] * f(hh) for k, f in enumerate(ACTIVATIONS))  # [i,B,H]
                    WS = mix.sum(1) * S
                    s = (WS + c * (A - WS)).sum(0)
                else:
                    prev, act = arch
                    p = states[prev[i]]
                    ch = (p if mask_h is None else p * mask_h) @ w
                    s = p + torch.sigmoid(ch[:, :H]) * (ACTIVATIONS[act[i]](ch[:, H:]) - p)
                states.append(self._norm(s))
            h = torch.stack(states[1:]).mean(0)
            outs.append(h)
        return torch.stack(outs), h

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, style={self.style!r}, {super().extra_repr()}"


class DartsRNNSupernet(_DartsLM):
    """The weights of every cell of a `darts_rnn` space: `supernet(tokens, hidden, arch or weights)`."""

    def __init__(self, space, vocab_size: int, hidden_size: int, **kw):
        if kw.get("style", "search") != "search":
            raise ConfigError("the DARTS recurrent supernet is the search network (style='search')")
        super().__init__(space, vocab_size, hidden_size, **kw)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None, arch):
        """tokens [T,B], hidden [B,H] or None, arch: Arch or LongTensor [L], or mixing weights float
        [E, 5] -> (logits [T,B,V], hidden [B,H])."""
        if isinstance(arch, torch.Tensor) and arch.is_floating_point():
            if arch.shape != self.space.mixture_shape:
                raise ConfigError(f"mixing weights must be {list(self.space.mixture_shape)}, got {list(arch.shape)}")
            return self._lm_forward(tokens, hidden, arch)
        tokens_ = arch.tokens if isinstance(arch, Arch) else tuple(arch_tokens(self, arch).tolist())
        return self._lm_forward(tokens, hidden, self.space.cell(tokens_))


class DartsRNNChild(_DartsLM):
    """One cell with the supernet's weights' shapes: `child(tokens, hidden)`."""

    def __init__(self, space, arch, vocab_size: int, hidden_size: int, **kw):
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.arch = Arch.of(space, arch)
        self.cell_spec = space.cell(self.arch.tokens)

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None):
        return self._lm_forward(tokens, hidden, self.cell_spec)


def supernet(space, **kw) -> DartsRNNSupernet:
    return DartsRNNSupernet(space, **kw)


def child(space, arch, **kw) -> DartsRNNChild:
    return DartsRNNChild(space, arch, **kw)


def param_map(child_net: DartsRNNChild, supernet_net: DartsRNNSupernet) -> list[ParamSlice]:
    """A child holds the supernet's weights as they are: every tensor under its own name."""
    if child_net.style != supernet_net.style:
        raise ConfigError("only a style='search' child computes the supernet's function")
    return [ParamSlice(name, name) for name in child_net.state_dict()]


__all__ = ["DartsRNNSupernet", "DartsRNNChild", "supernet", "child", "param_map"]
