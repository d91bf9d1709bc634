"""Reward evaluation of many ENAS recurrent cells in one forward over the shared weights.

A controller update scores its n sampled architectures on one validation batch x, y [T, B], and a
derive scores its candidates on one batch too. Run one at a time, each architecture pays its own
per-op overheads over the N x T small matmuls of the recurrence; here all n run together:

- the edge weights of all n cells are gathered once into [N-1, n, H, 2H] (node-major, so node i's
  weights of every architecture are one contiguous [n, H, 2H] block) through the supernet's
  `edge_weights`, so they are the true weights a single forward reads, pending weight decay included;
- the input projection x W_x [T, B, 2H] does not depend on the architecture: computed once, shared;
- the recurrence runs with batch n x B: one bmm per node and step; a node's input (its predecessor's
  state) and its activation are picked per architecture by index_select over precomputed flat
  indices, so there is no host sync and no Python branch on token values;
- the tied decoder runs over the outputs of all architectures in row chunks, so the [T, n*B, V]
  logits never exist at once when large (`*_DECODER_CHUNK_ELEMENTS`), and each chunk is reduced to
  per-token cross-entropies at once.

The cell is the one of enas/nn/rnn_cell.py in eval mode (no dropout, no hidden mask): highway nodes,
output = weighted mean of the loose ends or of all nodes (as the space says), output rows clipped to
norm <= max_hidden_norm. Everything runs in the model's dtype. Memory: the gathered edge weights take
n (N-1) H 2H numbers (10 cells of 12 nodes at hidden 1000: 880 MB in float32); callers score large
sets in chunks of about ten.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ArchError, ConfigError
from .rnn_cell import IDENTITY, RELU, SIGMOID, TANH

# The decoder's logits are formed for at most this many (row, word) pairs at a time. On the CPU 2^22
# (16 MB in float32, 419 rows of a 10,000-word vocabulary): the chunk stays in the last-level cache
# between the matmul that writes it and the softmax that reads it (2-core CPU, hidden 200, 10 cells:
# 0.74 s against 0.95 s for 2^24). On an accelerator 2^26 (256 MB), so that few launches are made.
CPU_DECODER_CHUNK_ELEMENTS = 1 << 22
DEVICE_DECODER_CHUNK_ELEMENTS = 1 << 26


def decode(model, tokens: torch.Tensor):
    """Per-architecture cell description from tokens [n, L] (no host sync):
    rows [N-1, n] edge rows of w_edges (node-major), prev [n, N-1], act [n, N], out_w [n, N]."""
    prev = tokens.index_select(1, model.prev_pos)  # [n, N-1]
    act = tokens.index_select(1, model.act_pos)
    if model.fixed_first_act:  # node 0 is tanh and has no token
        act = torch.cat([act.new_full((act.shape[0], 1), TANH), act], dim=1)  # [n, N]
    rows = (model.edge_base.unsqueeze(1) + prev.t())  # [N-1, n]: edge e(prev(i), i) of each cell
    dtype = model.w_h0.dtype
    if model.space.output == "all":
        loose = model.all_nodes.to(dtype).expand(tokens.shape[0], -1)  # [n, N]
    else:  # loose ends: the nodes no node reads (as RNNSupernet._cell_inputs, one row per cell)
        loose = 1.0 - torch.zeros(tokens.shape[0], model.num_nodes, dtype=dtype, device=tokens.device) \
            .scatter_(1, prev, 1.0)
    # weights formed in the model's dtype, as the single forward forms them (1/k in float32 != 1/k in float64)
    out_w = loose / loose.sum(dim=1, keepdim=True)
    return rows, prev, act, out_w


def recurrence(model, xproj: torch.Tensor, w_nodes: torch.Tensor, prev: torch.Tensor, act: torch.Tensor,
                out_w: torch.Tensor) -> torch.Tensor:
    """Eval-mode cell of n architectures from a zero state. xproj [T, B, 2H] (shared by all cells),
    w_nodes [N-1, n, H, 2H], prev [n, N-1], act [n, N], out_w [n, N] -> outputs Y [n, T, B, H], in
    xproj's dtype (the kernels write into preallocated buffers; under autocast every input is cast to
    the autocast dtype first, as the single cell does)."""
    device = xproj.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return _recurrence(model, xproj.to(dtype), w_nodes.to(dtype), prev, act, out_w.to(dtype),
                               model.w_h0.to(dtype))
    return _recurrence(model, xproj, w_nodes, prev, act, out_w, model.w_h0)


def _recurrence(model, xproj, w_nodes, prev, act, out_w, w_h0) -> torch.Tensor:
    T, B, H2 = xproj.shape
    H, (n, N) = H2 // 2, act.shape
    arange = torch.arange(n, device=act.device)
    # Flat indices, made once: cell a's node-i input is S[a, prev[a, i]] = S.view(n*N, B, H)[a*N + prev];
    # its activation is cand[act[a, i], a] = cand.view(4*n, B, H)[act * n + a].
    prev_rows = (arange.unsqueeze(1) * N + prev).t().contiguous()  # [N-1, n]
    act_rows = (act * n + arange.unsqueeze(1)).t().contiguous()  # [N, n]
    prev_i = [None] + list(prev_rows.unbind(0))
    act_i = list(act_rows.unbind(0))
    w_i = [None] + list(w_nodes.unbind(0))  # [n, H, 2H] each
    max_norm = model.max_hidden_norm

    Y = xproj.new_empty(n, T, B, H)
    S = xproj.new_empty(n, N, B, H)  # node states of the current step
    S_flat, S_i = S.view(n * N, B, H), S.unbind(1)
    cand = xproj.new_empty(4, n, B, H)  # the four activations of the current node
    cand_flat = cand.view(4 * n, B, H)
    f_tanh, f_relu, f_id, f_sig = cand[TANH], cand[RELU], cand[IDENTITY], cand[SIGMOID]
    z = xproj.new_empty(n, B, H2)
    zh, zc = z[..., :H], z[..., H:]
    out_row = out_w.unsqueeze(1)  # [n, 1, N]
    h = xproj.new_zeros(n, B, H)  # score starts every architecture from a zero state
    for t in range(T):
        for i in range(N):
            if i == 0:
                p = h
                torch.mm(p.view(n * B, H), w_h0, out=z.view(n * B, H2))
                z.add_(xproj[t])  # [B, 2H] broadcast over the n cells
            else:
                p = S_flat.index_select(0, prev_i[i])  # [n, B, H]
                torch.bmm(p, w_i[i], out=z)
            c = torch.sigmoid(zc)
            torch.tanh(zh, out=f_tanh)
            torch.clamp_min(zh, 0.0, out=f_relu)
            f_id.copy_(zh)
            torch.sigmoid(zh, out=f_sig)
            f = cand_flat.index_select(0, act_i[i])  # [n, B, H], each cell's own activation
            fp = f.sub_(p)
            torch.addcmul(p, c, fp, out=S_i[i])  # s_i = p + c (f - p): highway
        y = torch.bmm(out_row, S.view(n, N, B * H)).view(n, B, H)
        if max_norm is not None:
            norm = torch.linalg.vector_norm(y, dim=2, keepdim=True)  # [n, B, 1]
            y = y * torch.clamp(max_norm / norm, max=1.0)  # 1 where norm <= max_norm
        Y[:, t] = y
        h = y
    return Y


def decoder_losses(model, Y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy of the tied decoder: Y [R, H] outputs, targets [R] -> [R], with the
    logits formed for at most *_DECODER_CHUNK_ELEMENTS (row, word) pairs at a time."""
    W, bias = model.embedding.weight, model.decoder_bias
    elements = CPU_DECODER_CHUNK_ELEMENTS if W.device.type == "cpu" else DEVICE_DECODER_CHUNK_ELEMENTS
    rows = max(1, elements // W.shape[0])
    losses = Y.new_empty(Y.shape[0], dtype=torch.promote_types(Y.dtype, torch.float32))  # bf16 Y: float32 losses
    for start in range(0, Y.shape[0], rows):
        stop = start + rows
        logits = F.linear(Y[start:stop], W, bias)  # [rows, V]
        losses[start:stop] = F.cross_entropy(logits, targets[start:stop], reduction="none")
    return losses


@torch.no_grad()
def mean_cross_entropy(model, tokens: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eval-mode mean cross-entropy of every architecture of `tokens` [n, L] (long) on one batch
    x, y [T, B], each from a zero state: [n] in the model's dtype. Equals running the supernet once
    per architecture (`RNNSupernet.forward` in eval mode, then the mean cross-entropy of its logits)."""
    space = model.space
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[1] != space.num_tokens:
        got = f"shape {tuple(tokens.shape)}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ArchError(f"tokens must be a LongTensor [n, {space.num_tokens}], got {got}")
    if x.dim() != 2 or x.shape != y.shape:
        raise ConfigError(f"x and y must both be [T, B], got {tuple(x.shape)} and {tuple(y.shape)}")
    W = model.embedding.weight
    tokens = tokens.to(W.device, torch.long)
    n, (T, B) = tokens.shape[0], x.shape
    N, H = model.num_nodes, model.hidden_size
    rows, prev, act, out_w = decode(model, tokens)
    # the true rows (a row's pending weight decay applied on the gathered copy, the stored rows untouched)
    w_nodes = model.edge_weights(rows.reshape(-1)).view(N - 1, n, H, 2 * H)
    xproj = torch.matmul(F.embedding(x, W), model.w_x)  # [T, B, 2H], the same for every cell
    Y = recurrence(model, xproj, w_nodes, prev, act, out_w)  # [n, T, B, H]
    targets = y.reshape(1, T * B).expand(n, T * B).reshape(-1)  # [n*T*B], cell-major as Y
    losses = decoder_losses(model, Y.view(n * T * B, H), targets)
    return losses.view(n, T * B).mean(dim=1)
