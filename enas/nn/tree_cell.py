"""The tree-encoded recurrent cell of NAS (Zoph & Le 2017, sec. 3.2), over T time steps.

The architecture arrives decoded (`enas.spaces.nas_rnn.TreeCell`, Python ints), and the cell is
walked node by node with plain autograd: a supernet and a child run this same function on the same
tensors, so a step inside the supernet costs what the standalone child's step costs.

Weights: the `base` leaves' input matrices side by side as w_x [H_in, base*H] (the caller applies it
to all T steps in one matmul: x [T,B,H_in] @ w_x -> xproj [T,B,base*H]), their recurrent matrices as
w_h [H, base*H] and, with the space's `leaf_bias`, the bias [base*H] on the recurrent branch (where
tf.contrib.rnn.NASCell adds it to `m_matrix` when `use_biases`); leaf k reads columns k*H .. (k+1)*H - 1
of each. Inner nodes have no weights. A leaf of the space's `zero_leaves` reads none of them: its
pre-activation is the constant 0, so its columns get no gradient.

State: one tensor [B, 2H] = [h, c], so a task can detach and checkpoint it as a tensor.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError

ADD, ELEM_MULT = 0, 1                       # enas.spaces.nas_rnn.COMBINATIONS
IDENTITY, TANH, SIGMOID, RELU = 0, 1, 2, 3  # enas.spaces.nas_rnn.ACTIVATIONS


def _combine(kind: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b if kind == ADD else a * b


def _activate(kind: int, z: torch.Tensor) -> torch.Tensor:
    if kind == IDENTITY:
        return z
    if kind == TANH:
        return torch.tanh(z)
    if kind == SIGMOID:
        return torch.sigmoid(z)
    return torch.relu(z)


def _clip_rows(v: torch.Tensor, max_norm: float) -> torch.Tensor:
    """v [B,H] with every row's norm clipped to max_norm. The scale is a constant to the backward, as
    in the ENAS cell (enas/nn/rnn_cell.py, after ENAS-pytorch): the exact gradient of a clipped row has
    no radial part, so a state that grew too large would never be pulled back. The norm is clamped
    from below rather than the ratio from above, so a zero row (h_0 = 0 * c_{-1}, say) stays finite."""
    norm = torch.linalg.vector_norm(v.detach(), dim=1, keepdim=True)  # [B,1]
    return v * (max_norm / norm.clamp_min(max_norm))


def tree_cell_forward(xproj: torch.Tensor, state: torch.Tensor, w_h: torch.Tensor, bias: torch.Tensor | None,
                      cell, mask_h: torch.Tensor | None = None, max_norm: float | None = None):
    """Run the cell over T steps.

    xproj [T,B,base*H] = x_t W for every step; state [B,2H] = [h_{t-1}, c_{t-1}]; w_h [H,base*H];
    bias [base*H] or None; cell: a TreeCell; mask_h [B,H]: variational mask on h_{t-1} before the recurrent
    matmul (one per forward), or None; max_norm: clip each row of h_t (as the ENAS cell clips its
    output) and of c_t to this norm, or None. Returns (h_t for every step [T,B,H], the next state [B,2H]).

    Why c_t too: a tree may multiply c_{t-1} by an unbounded factor every step (an elem_mult inject
    into an identity node, say), and the state is carried across batches, so without a bound one
    such cell turns the carried state to inf and every later step, of any architecture, to NaN.
    """
    T, B, width = xproj.shape
    H = state.shape[1] // 2
    base, n = cell.base, cell.num_nodes
    if width != base * H or state.shape != (B, 2 * H) or w_h.shape != (H, base * H):
        raise ConfigError(f"tree cell of base {base}: xproj {tuple(xproj.shape)}, state {tuple(state.shape)} "
                          f"and w_h {tuple(w_h.shape)} do not fit hidden size {H}")
    leaf_cols = [slice(k * H, (k + 1) * H) for k in range(base)]
    zero_leaves = set(cell.zero_leaves)
    any_add = any(cell.combine[k] == ADD for k in range(base) if k not in zero_leaves)
    zero = xproj.new_zeros(B, H)  # a zero leaf's pre-activation
    h, c = state[:, :H], state[:, H:]
    outputs = []
    for t in range(T):
        u = h if mask_h is None else h * mask_h
        zh = u @ w_h if bias is None else torch.addmm(bias, u, w_h)  # [B, base*H]: U_k h_{t-1} (+ b_k), every leaf
        zx = xproj[t]                   # [B, base*H]: W_k x_t
        zsum = zx + zh if any_add else None  # the add leaves' pre-activations, in one op
        a: list[torch.Tensor] = [None] * n  # node outputs a_j [B,H], after any inject
        c_next = None
        for j in range(n):
            if j in zero_leaves:
                pre = zero
            elif j < base:
                cols = leaf_cols[j]
                pre = zsum[:, cols] if cell.combine[j] == ADD else zx[:, cols] * zh[:, cols]
            else:
                left, right = cell.children[j]
                pre = _combine(cell.combine[j], a[left], a[right])
            out = _activate(cell.act[j], pre)
            if j == cell.inject_node:  # a_j <- act(a_j (+|*) c_{t-1}), read downstream instead of a_j
                out = _activate(cell.inject_act, _combine(cell.inject_combine, out, c))
            if j == cell.c_node:
                c_next = pre
            a[j] = out
        h, c = a[n - 1], c_next
        if max_norm is not None:
            h, c = _clip_rows(h, max_norm), _clip_rows(c, max_norm)
        outputs.append(h)
    return torch.stack(outputs), torch.cat([h, c], dim=1)


@torch.no_grad()
def lstm_leaf_weights(lstm: torch.nn.LSTM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weights of a one-layer torch.nn.LSTM as the leaves of the zoo's `lstm` cell (base 8):
    (w_x [H_in, 8H], w_h [H, 8H], bias [8H]).

    torch stacks its gates i, f, g, o in weight_ih [4H, H_in] / weight_hh [4H, H]; the cell reads
    i on leaf 0, g on leaf 1, f on leaf 2 and o on leaf 4 with bias b_ih + b_hh on the recurrent
    branch; leaves 3, 5, 6, 7 are zero (their sums are 0 and feed adds).
    """
    if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
        raise ConfigError("lstm_leaf_weights takes a one-layer, one-direction LSTM without projection")
    H = lstm.hidden_size
    gates_ih = lstm.weight_ih_l0.view(4, H, -1)  # [gate, H, H_in]
    gates_hh = lstm.weight_hh_l0.view(4, H, H)
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).view(4, H) if lstm.bias else lstm.weight_hh_l0.new_zeros(4, H)
    w_x = lstm.weight_ih_l0.new_zeros(lstm.input_size, 8 * H)
    w_h = lstm.weight_hh_l0.new_zeros(H, 8 * H)
    bias = lstm.weight_hh_l0.new_zeros(8 * H)
    for gate, leaf in ((0, 0), (2, 1), (1, 2), (3, 4)):  # torch gate (i, f, g, o) -> leaf
        cols = slice(leaf * H, (leaf + 1) * H)
        w_x[:, cols] = gates_ih[gate].t()
        w_h[:, cols] = gates_hh[gate].t()
        bias[cols] = b[gate]
    return w_x, w_h, bias
