"""The ENAS recurrent cell with as few kernels per node and step as eager PyTorch allows: the path a GPU
takes (enas/nn/rnn_cell.py `cell_forward` picks it for CUDA tensors).

A replayed CUDA graph of the shared step (enas/cuda_graph.py) is bound by its kernel launches, a few
microseconds each, not by arithmetic. This cell runs 8 kernels per node and step in the forward and 4
in the backward (the CPU path: 19 and 6; benchmarks/op_count.py counts both). It computes the same
function as rnn_cell.py's cell (the same equations, see its docstring), with its gradient written by
hand too, and equals the naive cell in float64 (tests/test_rnn_supernet.py). It is not the CPU's
path: there its larger working set (a [B, 6, H] buffer per node and step, the backward's factors
formed for all steps in passes through memory rather than per step in cache) made the cell's forward
and backward 0.57x as fast at hidden 200 (benchmarks/README.md). `cell_forward` runs `LeanCell` (with
a backward) or `lean_forward` (without) as it runs rnn_cell.py's own pair.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .rnn_cell import RELU, SIGMOID, TANH, step_output, weight_grads

# A node's work buffer [B, 6, H] (one per node and step when the backward needs them): its slots are
# laid out so that one matmul writes [zh, zc] (slots ZH, ZC), one sigmoid reads both and writes
# [sigmoid(zh), c] (SIG, GATE), and one index_select along the slots picks the node's f(zh) among
# TANH_F, RELU_F, ZH (the identity) and SIG. Fewer kernels per node and step is what a replayed CUDA
# graph of the step is bounded by (benchmarks/op_count.py).
TANH_F, RELU_F, ZH, ZC, SIG, GATE = range(6)


def _grid(x: torch.Tensor, N: int, T: int) -> list:
    """x[i][t] as a list of lists of views; x [N,T,...], or [1,1,...] when one buffer serves every node
    and step. Views are made once: indexing inside the N*T loop costs more than the small ops."""
    rows = [x_i.unbind(0) for x_i in x.unbind(0)]
    return rows if x.shape[:2] == (N, T) else [rows[0] * T] * N


def lean_forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm, save):
    """The recurrence under no_grad. Shapes: xproj [T,B,2H], h0 [B,H], w_h0 [H,2H],
    w_nodes [N-1,H,2H], prev [N-1] long, act [N] long, out_w [N], mask_h [B,H] or None.

    Per node and step it runs 8 kernels (node 0: 7): the input's gather, its mask, the matmul, one
    sigmoid for both halves, tanh, relu, the pick of f(zh), and s = lerp(p, f, c) = p + c (f - p).
    Returns Y [T,B,H] and, when `save`, what the backward needs: the node states S [N,T,B,H], the work
    buffers A [N,T,B,6,H] (the gates c are A[..., GATE, :]), the chosen activations F [N,T,B,1,H],
    and for clipping scale [T,B,1] (a constant to the backward, see the module docstring).
    """
    T, B, H2 = xproj.shape
    H, N = H2 // 2, act.shape[0]
    S = xproj.new_empty(N, T, B, H)
    Y = xproj.new_empty(T, B, H)
    A = xproj.new_empty(N, T, B, 6, H) if save else xproj.new_empty(1, 1, B, 6, H)
    F = xproj.new_empty(*A.shape[:3], 1, H)
    clip = max_norm is not None
    if clip:
        Ypre, scale_all = xproj.new_empty(T, B, H), xproj.new_empty(T, B, 1)
    # the slot of each node's f(zh): TANH, RELU, IDENTITY, SIGMOID -> TANH_F, RELU_F, ZH, SIG (computed
    # on the device: a tensor made from a Python list would be a host copy, which a CUDA graph refuses)
    slot = act + (act == SIGMOID)
    slot_i = [slot[i:i + 1] for i in range(N)]
    prev_i = [None] + [prev[i - 1:i] for i in range(1, N)]
    Z = _grid(A[..., ZH:ZC + 1, :].flatten(-2), N, T)  # [B,2H] = [zh, zc], the matmul's output
    Zs, Sg = _grid(A[..., ZH:ZC + 1, :], N, T), _grid(A[..., SIG:GATE + 1, :], N, T)  # [B,2,H]
    Zh, C = _grid(A[..., ZH, :], N, T), _grid(A[..., GATE, :], N, T)
    Ftanh, Frelu = _grid(A[..., TANH_F, :], N, T), _grid(A[..., RELU_F, :], N, T)
    Aw, Fw, f_of = _grid(A, N, T), _grid(F, N, T), _grid(F[..., 0, :], N, T)
    S_it = [s_i.unbind(0) for s_i in S.unbind(0)]  # S_it[i][t]: [B,H]
    p_buf, u_buf = xproj.new_empty(1, B, H), xproj.new_empty(B, H)
    p_rest = p_buf[0]
    out_row = out_w.view(1, N)
    xproj_t, Y_t, w_i = xproj.unbind(0), Y.unbind(0), [None] + list(w_nodes.unbind(0))

    h = h0
    for t in range(T):
        St = S[:, t]  # [N,B,H] view
        for i in range(N):
            if i == 0:
                p = h
            else:
                torch.index_select(St, 0, prev_i[i], out=p_buf)
                p = p_rest
            u = p if mask_h is None else torch.mul(p, mask_h, out=u_buf)
            if i == 0:
                torch.addmm(xproj_t[t], u, w_h0, out=Z[i][t])
            else:
                torch.mm(u, w_i[i], out=Z[i][t])
            torch.sigmoid(Zs[i][t], out=Sg[i][t])  # [sigmoid(zh), c]
            torch.tanh(Zh[i][t], out=Ftanh[i][t])
            torch.clamp_min(Zh[i][t], 0.0, out=Frelu[i][t])
            torch.index_select(Aw[i][t], 1, slot_i[i], out=Fw[i][t])  # f(zh) [B,1,H]
            torch.lerp(p, f_of[i][t], C[i][t], out=S_it[i][t])  # s = p + c (f - p)
        step_output(St, out_row, Y_t[t], Ypre[t] if clip else None, scale_all[t] if clip else None, max_norm)
        h = Y_t[t]
    if not save:
        return Y, None
    saved = dict(S=S, A=A, F=F)
    if clip:
        saved.update(scale=scale_all)
    return Y, saved


def _backward_factors(S, A, F, Y, h0, prev, act):
    """What the node-by-node backward reads, formed for all nodes and steps at once (a few large kernels
    instead of a dozen small ones per node and step). With s = p + c (f(zh) - p), the three factors of
    ds side by side, so that one kernel multiplies a node's grad by all three: K [N,T,B,3,H] =
    [c f'(zh), (f - p) c (1 - c), 1 - c] (ds/dzh, ds/dzc, ds/dp through the highway); and the node inputs
    h_prev [T,B,H] (node 0's p = h_{t-1}) and P [N-1,T,B,H] (node i's p = s_prev(i))."""
    N = S.shape[0]
    c, f = A[..., GATE, :], F[..., 0, :]
    h_prev = torch.cat([h0.unsqueeze(0), Y[:-1]])
    P = S.index_select(0, prev)
    # f'(zh) from f itself: tanh' = 1 - f^2, relu' = sign(f) (f = relu(zh)), identity' = 1, sigmoid' = f - f^2
    a, one = act.view(N, 1, 1, 1), torch.ones_like(f)
    d = torch.where(a == TANH, torch.addcmul(one, f, f, value=-1.0),
                    torch.where(a == RELU, torch.sign(f),
                                torch.where(a == SIGMOID, torch.addcmul(f, f, f, value=-1.0), one)))
    fp = torch.cat([(f[0] - h_prev).unsqueeze(0), f[1:] - P])
    K = S.new_empty(*S.shape[:3], 3, S.shape[3])
    torch.mul(c, d, out=K[..., 0, :])
    torch.mul(fp, torch.addcmul(c, c, c, value=-1.0), out=K[..., 1, :])
    torch.neg(c, out=K[..., 2, :]).add_(1.0)
    return K, h_prev, P


class LeanCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm):
        Y, saved = lean_forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm, save=True)
        ctx.save_for_backward(h0, w_h0, w_nodes, prev, act, out_w, mask_h, Y)
        ctx.saved = saved
        ctx.max_norm = max_norm
        return Y

    @staticmethod
    @once_differentiable
    def backward(ctx, gY):
        h0, w_h0, w_nodes, prev, act, out_w, mask_h, Y = ctx.saved_tensors
        sv, clip = ctx.saved, ctx.max_norm is not None
        S = sv["S"]
        N, T, B, H = S.shape
        K, h_prev, P = _backward_factors(S, sv["A"], sv["F"], Y, h0, prev, act)
        # per node and step: [grad of zh, grad of zc, grad of p through the highway] = gs * K
        G3 = S.new_empty(N, T, B, 3, H)
        G = G3[..., :2, :].flatten(-2)  # [N,T,B,2H] grad of each node's pre-activation [zh, zc]
        gS = S.new_empty(N, B, H)  # grad of the node states of the current step
        # views made once (see _grid); per node and step 4 kernels (node 0: 3)
        w_t = [w_h0.t()] + list(w_nodes.transpose(1, 2).unbind(0))  # [2H,H] per node
        G_it, G3_it, K_it = _grid(G, N, T), _grid(G3, N, T), _grid(K, N, T)
        gP_it, gP_row = _grid(G3[..., 2, :], N, T), _grid(G3[..., 2, :].unsqueeze(2), N, T)  # [B,H], [1,B,H]
        gS_i = [g.unsqueeze(1) for g in gS.unbind(0)]  # [B,1,H]
        prev_i = [None] + [prev[i - 1:i] for i in range(1, N)]
        out_col = out_w.view(N, 1, 1)
        gh = None  # grad reaching h_t from step t+1
        for t in reversed(range(T)):
            g = gY[t] if gh is None else gY[t] + gh
            if clip:  # the scale as a constant (module docstring)
                g = g * sv["scale"][t]
            torch.mul(out_col, g, out=gS)
            for i in reversed(range(N)):
                torch.mul(gS_i[i], K_it[i][t], out=G3_it[i][t])
                gu = torch.mm(G_it[i][t], w_t[i])  # grad of the matmul's input u
                gp = gP_it[i][t]  # gs (1 - c), plus what reaches p through u
                if mask_h is None:
                    gp.add_(gu)
                else:
                    gp.addcmul_(gu, mask_h)
                if i == 0:
                    gh = gp
                else:
                    gS.index_add_(0, prev_i[i], gP_row[i][t])
        need = ctx.needs_input_grad
        g_w_h0, g_w_nodes = weight_grads(need, h_prev, P, G, mask_h)
        g_xproj = G[0] if need[0] else None
        g_h0 = gh if need[1] else None
        return g_xproj, g_h0, g_w_h0, g_w_nodes, None, None, None, None, None
