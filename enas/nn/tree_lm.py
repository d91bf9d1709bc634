"""The language model of `nas_rnn`: the tree cell (enas/nn/tree_cell.py) inside the shared LM body
(enas/nn/rnn_lm.py `RecurrentLM`: tied embedding and decoder, decoder bias, dropout masks, init).

Every architecture of the space reads every leaf and inner nodes carry no weights, so the supernet
and a child hold the same tensors (w_x, w_h [H, base*H], bias [base*H]) and `param_map` is the
identity. The supernet decodes the architecture once per forward (host ints) and then runs the
child's code. The recurrent state is [B, 2H] = [h, c]; the decoder reads h.

Initialisation: U(-init_range, init_range) as the ENAS LM, the leaf bias (space option `leaf_bias`)
zero (tf.contrib.rnn.NASCell: `zeros_initializer` for its bias), and the columns of the space's
`zero_leaves` zero: no forward reads them, so they stay so.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..arch import Arch
from ..errors import ConfigError
from ..spaces.nas_rnn import NASRNNSpace, TreeCell
from .param_map import ParamSlice
from .rnn_lm import RecurrentLM, arch_tokens
from .tree_cell import tree_cell_forward


class _TreeLM(RecurrentLM):
    """What the supernet and the child of `nas_rnn` share: all of it but how the arch arrives."""

    state_size = 2  # [h, c]

    def __init__(self, space, vocab_size: int, hidden_size: int, **kw):
        if not isinstance(space, NASRNNSpace):
            raise ConfigError(f"the tree-cell LM needs a nas_rnn space, got {space!r}")
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.base = space.base

    def _make_cell_parameters(self) -> None:
        H, k = self.hidden_size, self.space.base
        self.w_x = nn.Parameter(torch.empty(H, k * H))  # leaf j: columns j*H .. (j+1)*H - 1
        self.w_h = nn.Parameter(torch.empty(H, k * H))
        # on the recurrent branch (NASCell), with the space's leaf_bias only
        self.bias = nn.Parameter(torch.empty(k * H)) if self.space.leaf_bias else None

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        H = self.hidden_size
        with torch.no_grad():
            for k in self.space.zero_leaves:
                for w in (self.w_x, self.w_h, self.bias):
                    if w is not None:
                        w[..., k * H:(k + 1) * H] = 0

    def _cell(self, arch) -> TreeCell:
        raise NotImplementedError

    def _recur(self, x, hidden, arch, mask_h):
        if hidden.dim() != 2 or hidden.shape[1] != 2 * self.hidden_size:
            raise ConfigError(f"the tree-cell state is [B, 2H] = [B, {2 * self.hidden_size}], got "
                              f"{tuple(hidden.shape)}")
        cell = self._cell(arch)
        xproj = torch.matmul(x, self.w_x)  # [T,B,base*H], all steps in one matmul
        return tree_cell_forward(xproj, hidden, self.w_h, self.bias, cell, mask_h, self.max_hidden_norm)

    def extra_repr(self) -> str:
        return f"base={self.base}, {super().extra_repr()}"


class TreeSupernet(_TreeLM):
    """The shared weights of every `nas_rnn` cell: `supernet(tokens, hidden, arch)`."""

    def __init__(self, space, vocab_size: int, hidden_size: int, **kw):
        super().__init__(space, vocab_size, hidden_size, **kw)
        self._decoded: tuple[tuple[int, ...], TreeCell] | None = None  # the last arch, decoded
        self.reset_parameters()

    def _cell(self, arch) -> TreeCell:
        if isinstance(arch, Arch):
            arch_tokens(self, arch)  # checks the space
            tokens = arch.tokens
        else:
            tokens = tuple(arch_tokens(self, arch).tolist())  # one host read per forward
        if self._decoded is None or self._decoded[0] != tokens:
            Arch(self.space, tokens)  # validates
            self._decoded = (tokens, self.space.cell(tokens))
        return self._decoded[1]

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None, arch):
        """tokens [T,B] long, hidden [B,2H] or None, arch: Arch or LongTensor[L] -> (logits [T,B,V], hidden [B,2H])."""
        return self._lm_forward(tokens, hidden, arch)


class TreeChild(_TreeLM):
    """A standalone model of one `nas_rnn` architecture."""

    def __init__(self, space, arch, vocab_size: int, hidden_size: int, **kw):
        super().__init__(space, vocab_size, hidden_size, **kw)
        self.arch = arch = Arch.of(space, arch)
        self.cell = space.cell(arch.tokens)
        self.reset_parameters()

    def _cell(self, arch) -> TreeCell:
        return self.cell

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None):
        """tokens [T,B] long, hidden [B,2H] or None -> (logits [T,B,V], hidden [B,2H])."""
        return self._lm_forward(tokens, hidden, self.arch)


def supernet(space, **kw) -> TreeSupernet:
    return TreeSupernet(space, **kw)


def child(space, arch, **kw) -> TreeChild:
    return TreeChild(space, arch, **kw)


def param_map(child_net: TreeChild, supernet_net: TreeSupernet) -> list[ParamSlice]:
    """The identity: the child holds exactly the supernet's tensors."""
    if (child_net.decoder_bias is None) != (supernet_net.decoder_bias is None):
        raise ConfigError("supernet and child differ in decoder_bias")
    return [ParamSlice(name, name) for name in child_net.state_dict()]
