"""The ENAS recurrent cell over a whole BPTT segment: a fast path and a naive reference.

Cell equations (Pham et al. 2018, sec. 2.1; official ENAS src/ptb/ptb_enas_child.py, `_rhn_fixed`):

    node 0:  [zh, zc] = x_t W_x + (h_{t-1} * m_h) W_h0        (x W_x is hoisted over all T steps)
             c = sigmoid(zc),  s_0 = c * f_0(zh) + (1 - c) * h_{t-1}
    node i:  [zh, zc] = (s_p(i) * m_h) W_i                   (W_i is the weight of edge (p(i), i))
             c = sigmoid(zc),  s_i = c * f_i(zh) + (1 - c) * s_p(i)
    output:  y_t = sum_k out_w[k] s_k   (mean of the loose ends, or of all nodes), rows clipped to
             norm <= max_norm; y_t is both the cell output and the next h.

The clip's scale min(1, max_norm / |y|) is a constant to the backward, as in ENAS-pytorch
(models/shared_rnn.py RNN.forward multiplies h by a mask built outside autograd). The clip's own
gradient has no radial part: once a step makes a cell with relu or identity nodes expansive and
every row is clipped, nothing would pull the state back and the loss would stay above uniform.

m_h is the variational hidden mask: as in the official search and final code (OFF `_rhn_enas`,
google-research enas_lm child.py `layer_mask`) it multiplies h_{t-1} at node 0 *and* the input of
every node's matmul, but not the highway term (1 - c) * s_p(i).

The fast path (`cell_forward`) reads the architecture only as tensors: prev[N-1] (predecessor of
nodes 1..N-1), act[N] (activation index per node), out_w[N]. It never asks the host for a value, so
one graph serves every architecture. Its gradient is written by hand (`_EnasCell.backward`): BPTT
runs node by node in reverse, and the weight gradients of all T steps are formed at the end with one
large matmul per weight (K = T*B) instead of T small ones; autograd only sees one node. On a GPU the
same function runs as enas/nn/rnn_cell_lean.py, with half the kernels per node and step
(`LEAN_DEVICES`).

`naive_cell_forward` is the obviously-right reference: Python ints, `if act == 0: tanh`, autograd.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

TANH, RELU, IDENTITY, SIGMOID = 0, 1, 2, 3
# Devices whose cell is the one with fewer kernels per node and step (enas/nn/rnn_cell_lean.py): where
# kernel launches bound a step. On the CPU this file's cell, whose working set stays in cache, is faster.
LEAN_DEVICES = ("cuda",)


# --------------------------------------------------------------------------------------------------
# fast path
# --------------------------------------------------------------------------------------------------
def _forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm, save):
    """The recurrence under no_grad. Shapes: xproj [T,B,2H], h0 [B,H], w_h0 [H,2H],
    w_nodes [N-1,H,2H], prev [N-1] long, act [N] long, out_w [N], mask_h [B,H] or None.

    Returns Y [T,B,H] and, when `save`, what the backward needs (all [N,T,B,H] unless noted):
    S node states, CD = c * f'(zh), FPC = (f - p) * c * (1 - c), OMC = 1 - c; and for clipping
    scale [T,B,1] (a constant to the backward, see the module docstring).
    """
    T, B, H2 = xproj.shape
    H, N = H2 // 2, act.shape[0]
    S = xproj.new_empty(N, T, B, H)
    Y = xproj.new_empty(T, B, H)
    if save:
        CD, FPC, OMC = (xproj.new_empty(N, T, B, H) for _ in range(3))
    clip = max_norm is not None
    if clip:
        Ypre, scale_all = xproj.new_empty(T, B, H), xproj.new_empty(T, B, 1)
    # cand[k] = (f_k(zh), f_k'(zh)) for the four activations; one index_select by act[i] picks a
    # node's pair without a Python branch. cand[IDENTITY, 1] stays 1.
    cand = xproj.new_empty(4, 2, B, H)
    cand[IDENTITY, 1].fill_(1.0)
    # Views are made once here: indexing inside the N*T loop costs more than the small ops themselves.
    f_tanh, d_tanh = cand[TANH].unbind(0)
    f_relu, d_relu = cand[RELU].unbind(0)
    f_id, ones = cand[IDENTITY].unbind(0)
    f_sig, d_sig = cand[SIGMOID].unbind(0)
    f_cand = cand[:, 0]
    z = xproj.new_empty(B, H2)
    zh, zc = z[:, :H], z[:, H:]
    out_row = out_w.view(1, N)
    act_i = [act[i:i + 1] for i in range(N)]
    prev_i = [None] + [prev[i - 1:i] for i in range(1, N)]
    S_it = [s_i.unbind(0) for s_i in S.unbind(0)]  # S_it[i][t]: [B,H]
    if save:
        CD_it, FPC_it, OMC_it = ([x_i.unbind(0) for x_i in X.unbind(0)] for X in (CD, FPC, OMC))
    xproj_t, Y_t, w_i = xproj.unbind(0), Y.unbind(0), [None] + list(w_nodes.unbind(0))

    h = h0
    for t in range(T):
        St = S[:, t]  # [N,B,H] view
        for i in range(N):
            if i == 0:
                p = h
                u = p if mask_h is None else p * mask_h
                torch.addmm(xproj_t[t], u, w_h0, out=z)
            else:
                p = St.index_select(0, prev_i[i])[0]
                u = p if mask_h is None else p * mask_h
                torch.mm(u, w_i[i], out=z)
            c = torch.sigmoid(zc)
            torch.tanh(zh, out=f_tanh)
            torch.clamp_min(zh, 0.0, out=f_relu)
            f_id.copy_(zh)
            torch.sigmoid(zh, out=f_sig)
            if save:
                torch.addcmul(ones, f_tanh, f_tanh, value=-1.0, out=d_tanh)
                torch.sign(f_relu, out=d_relu)
                torch.addcmul(f_sig, f_sig, f_sig, value=-1.0, out=d_sig)
                f, d = cand.index_select(0, act_i[i])[0].unbind(0)  # [B,H] each, fresh copies
            else:
                f = f_cand.index_select(0, act_i[i])[0]
            fp = f.sub_(p)  # f - p
            torch.addcmul(p, c, fp, out=S_it[i][t])
            if save:
                torch.mul(c, d, out=CD_it[i][t])
                torch.mul(fp, torch.addcmul(c, c, c, value=-1.0), out=FPC_it[i][t])
                torch.neg(c, out=OMC_it[i][t]).add_(1.0)
        step_output(St, out_row, Y_t[t], Ypre[t] if clip else None, scale_all[t] if clip else None, max_norm)
        h = Y_t[t]
    if not save:
        return Y, None
    saved = dict(S=S, CD=CD, FPC=FPC, OMC=OMC)
    if clip:
        saved.update(scale=scale_all)
    return Y, saved


def step_output(St, out_row, y_out, y_pre=None, scale_out=None, max_norm=None) -> None:
    """y_t = sum_k out_w[k] s_k, its rows clipped to max_norm, into y_out [B,H]. St [N,B,H] the node
    states; out_row [1,N]; with a clip, y_pre [B,H] receives the unclipped y and scale_out [B,1] the
    clip's scale (a constant to the backward, see the module docstring)."""
    N, B, H = St.shape
    y = y_out if max_norm is None else y_pre
    torch.mm(out_row, St.reshape(N, B * H), out=y.view(1, B * H))
    if max_norm is not None:
        norm = torch.linalg.vector_norm(y, dim=1, keepdim=True)  # [B,1]
        torch.clamp(max_norm / norm, max=1.0, out=scale_out)  # 1 where norm <= max_norm (or 0)
        torch.mul(y, scale_out, out=y_out)


def weight_grads(need, h_prev, inputs, G, mask_h):
    """The gradients of w_h0 and w_nodes over all T steps at once, sum_t u_t^T g_t = U^T G, one matmul of
    T*B rows each (None where `need`, the backward's needs_input_grad, says none is needed).
    h_prev [T,B,H]: node 0's input h_{t-1}; inputs [N-1,T,B,H]: node i's input s_p(i) (written over);
    G [N,T,B,2H]: the grads of each node's [zh, zc]; mask_h [B,H] or None."""
    N, T, B, H2 = G.shape
    H = H2 // 2
    g_w_h0 = g_w_nodes = None
    if need[2]:
        U0 = h_prev if mask_h is None else h_prev * mask_h
        g_w_h0 = U0.reshape(T * B, H).t().mm(G[0].reshape(T * B, H2))
    if need[3]:
        U = inputs if mask_h is None else inputs.mul_(mask_h)
        g_w_nodes = torch.bmm(U.view(N - 1, T * B, H).transpose(1, 2), G[1:].reshape(N - 1, T * B, H2))
    return g_w_h0, g_w_nodes


class _EnasCell(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm):
        Y, saved = _forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm, save=True)
        ctx.save_for_backward(h0, w_h0, w_nodes, prev, out_w, mask_h, Y)
        ctx.saved = saved
        ctx.max_norm = max_norm
        return Y

    @staticmethod
    @once_differentiable
    def backward(ctx, gY):
        h0, w_h0, w_nodes, prev, out_w, mask_h, Y = ctx.saved_tensors
        sv, clip = ctx.saved, ctx.max_norm is not None
        S, CD, FPC, OMC = sv["S"], sv["CD"], sv["FPC"], sv["OMC"]
        N, T, B, H = S.shape
        G = S.new_empty(N, T, B, 2 * H)  # grad of each node's pre-activation [zh, zc]
        gS = S.new_empty(N, B, H)  # grad of the node states of the current step
        # views made once (see _forward)
        w_t = [w_h0.t()] + list(w_nodes.transpose(1, 2).unbind(0))  # [2H,H] per node
        G_it, CD_it, FPC_it, OMC_it = ([x_i.unbind(0) for x_i in X.unbind(0)] for X in (G, CD, FPC, OMC))
        gS_i, prev_i = gS.unbind(0), [None] + [prev[i - 1:i] for i in range(1, N)]
        out_col = out_w.view(N, 1, 1)
        gh = None  # grad reaching h_t from step t+1
        for t in reversed(range(T)):
            g = gY[t] if gh is None else gY[t] + gh
            if clip:  # the scale as a constant (module docstring)
                g = g * sv["scale"][t]
            torch.mul(out_col, g, out=gS)
            for i in reversed(range(N)):
                gs, Gi = gS_i[i], G_it[i][t]
                torch.mul(gs, CD_it[i][t], out=Gi[:, :H])
                torch.mul(gs, FPC_it[i][t], out=Gi[:, H:])
                gu = torch.mm(Gi, w_t[i])
                gp = gs * OMC_it[i][t]
                if mask_h is None:
                    gp.add_(gu)
                else:
                    gp.addcmul_(gu, mask_h)
                if i == 0:
                    gh = gp
                else:
                    gS.index_add_(0, prev_i[i], gp.unsqueeze(0))
        need = ctx.needs_input_grad
        g_w_h0, g_w_nodes = weight_grads(need, torch.cat([h0.unsqueeze(0), Y[:-1]]), S.index_select(0, prev), G,
                                         mask_h)
        g_xproj = G[0] if need[0] else None
        g_h0 = gh if need[1] else None
        return g_xproj, g_h0, g_w_h0, g_w_nodes, None, None, None, None, None


def cell_forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h=None, max_norm=None):
    """Run the cell over T steps; returns the cell outputs Y [T,B,H] (Y[-1] is the next hidden).

    xproj [T,B,2H] = x W_x for all steps; h0 [B,H]; w_h0 [H,2H]; w_nodes [N-1,H,2H] (the chosen
    edges' weights, node order); prev [N-1] long; act [N] long; out_w [N] output weights;
    mask_h [B,H] variational hidden mask or None; max_norm float or None.

    Under autocast the whole cell runs in the autocast dtype (bf16): its kernels write into
    preallocated buffers, which autocast does not convert, so the inputs are cast here once.
    """
    device = xproj.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        xproj, h0, w_h0, w_nodes, out_w = (t.to(dtype) for t in (xproj, h0, w_h0, w_nodes, out_w))
        mask_h = None if mask_h is None else mask_h.to(dtype)
        with torch.autocast(device, enabled=False):
            return cell_forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm)
    cell, forward = ((rnn_cell_lean.LeanCell, rnn_cell_lean.lean_forward) if device in LEAN_DEVICES
                     else (_EnasCell, _forward))
    if torch.is_grad_enabled() and any(
            x.requires_grad for x in (xproj, h0, w_h0, w_nodes)):
        return cell.apply(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm)
    with torch.no_grad():
        return forward(xproj, h0, w_h0, w_nodes, prev, act, out_w, mask_h, max_norm, save=False)[0]


from . import rnn_cell_lean  # noqa: E402  (it reads the constants above)


# --------------------------------------------------------------------------------------------------
# naive reference
# --------------------------------------------------------------------------------------------------
def _activation(z, act: int):
    if act == TANH:
        return torch.tanh(z)
    if act == RELU:
        return torch.relu(z)
    if act == IDENTITY:
        return z
    if act == SIGMOID:
        return torch.sigmoid(z)
    raise ValueError(f"unknown activation {act}")


def naive_cell_forward(xproj, h0, w_h0, w_nodes, prev, act, loose, mask_h=None, max_norm=None):
    """Reference: the same function as `cell_forward`, written plainly with autograd.

    w_nodes: a sequence of N-1 [H,2H] tensors (node i uses w_nodes[i-1]); prev, act: Python ints as
    from `space.cell(tokens)` (prev[0] is ignored); loose: the node indices averaged into the output.
    """
    H = h0.shape[1]
    h = h0
    outputs = []
    for t in range(xproj.shape[0]):
        states = []
        for i in range(len(act)):
            if i == 0:
                p = h
                inp = p if mask_h is None else p * mask_h
                z = xproj[t] + inp @ w_h0
            else:
                p = states[prev[i]]
                inp = p if mask_h is None else p * mask_h
                z = inp @ w_nodes[i - 1]
            c = torch.sigmoid(z[:, H:])
            f = _activation(z[:, :H], act[i])
            states.append(c * f + (1 - c) * p)
        y = sum(states[k] for k in loose) / len(loose)
        if max_norm is not None:
            norm = y.norm(dim=1, keepdim=True)
            y = torch.where(norm > max_norm, y * (max_norm / norm).detach(), y)  # constant scale
        outputs.append(y)
        h = y
    return torch.stack(outputs)
