"""The ENAS recurrent supernet: supernet == child, fast cell == naive cell, gradients, shapes; every test
for both fast cells, the CPU's and the GPU's (enas/nn/rnn_cell_lean.py)."""
import random

import pytest
import torch

import enas
from enas.nn import rnn_cell
from enas.nn.rnn_cell import naive_cell_forward
from enas.nn.rnn_lm import RNNChild, RNNSupernet, edge_index

V, H, T, B = 23, 6, 5, 3
DROP = dict(dropout_e=0.2, dropout_x=0.3, dropout_h=0.25, dropout_o=0.3)
VARIANTS = [dict(num_nodes=5), dict(num_nodes=6, first_act="tanh"), dict(num_nodes=4, output="all"),
            dict(num_nodes=5, first_act="tanh", output="all"), dict(num_nodes=1)]


@pytest.fixture(autouse=True, params=["cpu cell", "lean cell"])
def cell_path(request, monkeypatch):
    """Which fast cell the CPU runs: its own, or the one a GPU runs."""
    lean = ("cuda", "cpu") if request.param == "lean cell" else ("cuda",)
    monkeypatch.setattr(rnn_cell, "LEAN_DEVICES", lean)
    return request.param


def _supernet(space, **kw):
    torch.manual_seed(0)
    return enas.build_supernet(space, vocab_size=V, hidden_size=H, init_range=0.5, **kw).double()


def _tokens(seed=0):
    return torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(seed))


def _archs(space, n=4, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng=rng) for _ in range(n)]


@pytest.mark.parametrize("options", VARIANTS, ids=str)
def test_supernet_equals_child_with_inherited_weights(options):
    space = enas.get_space("enas_rnn", **options)
    sup = _supernet(space, max_hidden_norm=1.0, **DROP).eval()
    tok, h = _tokens(), torch.randn(B, H, dtype=torch.float64)
    for arch in _archs(space):
        child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, max_hidden_norm=1.0, **DROP).double()
        enas.inherit_weights(child, sup, arch)
        child.eval()
        ls, hs = sup(tok, h, arch)
        lc, hc = child(tok, h)
        assert torch.allclose(ls, lc, atol=1e-10, rtol=0) and torch.allclose(hs, hc, atol=1e-10, rtol=0)
        assert child.arch == arch


def test_child_holds_only_its_weights():
    space = enas.get_space("enas_rnn", num_nodes=12)
    arch = enas.zoo.get("enas_ptb")
    child = enas.build_child(space, arch, vocab_size=V, hidden_size=H)
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H)
    assert child.w_nodes.shape == (11, H, 2 * H) and sup.w_edges.shape == (66, H, 2 * H)
    n_child = sum(p.numel() for p in child.parameters())
    assert n_child == V * H + V + 2 * H * 2 * H + 11 * H * 2 * H  # embedding, decoder bias, node 0, edges
    with pytest.raises(enas.ArchError):
        enas.inherit_weights(child, sup, space.sample(seed=3))


@pytest.mark.parametrize("options", VARIANTS, ids=str)
@pytest.mark.parametrize("train", [False, True])
def test_fast_cell_equals_naive_cell_outputs_and_gradients(options, train):
    space = enas.get_space("enas_rnn", **options)
    sup = _supernet(space, max_hidden_norm=0.8, **DROP).train(train)
    tok, h0 = _tokens(1), torch.randn(B, H, dtype=torch.float64)
    for arch in _archs(space, seed=1):
        results = []
        for reference in (False, True):
            sup.reference = reference
            sup.zero_grad()
            torch.manual_seed(7)  # the same dropout masks for both paths
            h = h0.clone().requires_grad_()
            logits, hidden = sup(tok, h, arch if reference else arch.tensor())
            (logits.pow(2).sum() + logits.sum() + hidden.sum()).backward()
            grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in sup.parameters()]
            results.append([logits, hidden, h.grad] + grads)
        for fast, naive in zip(*results):
            assert torch.allclose(fast, naive, atol=1e-10, rtol=0)


def test_cell_functions_agree_directly_with_clipping_active():
    space = enas.get_space("enas_rnn", num_nodes=7)
    sup = _supernet(space, max_hidden_norm=0.3)
    arch = space.sample(seed=5)
    x = torch.randn(T, B, 2 * H, dtype=torch.float64)
    h = 3 * torch.randn(B, H, dtype=torch.float64)
    w_nodes, prev, act, out_w = sup._cell_inputs(arch)
    fast = enas.nn.cell_forward(x, h, sup.w_h0, w_nodes, prev, act, out_w, max_norm=0.3)
    w_list, p, a, loose = sup._naive_inputs(arch)
    naive = naive_cell_forward(x, h, sup.w_h0, w_list, p, a, loose, max_norm=0.3)
    assert torch.allclose(fast, naive, atol=1e-10, rtol=0)
    assert fast.norm(dim=-1).max() <= 0.3 + 1e-12


def test_the_hidden_clip_scale_is_a_constant_to_the_backward():
    """With every output row clipped, a loss of the rows' squared norms is constant in the weights, so its
    exact gradient is 0; treating the scale as a constant (ENAS-pytorch) leaves the radial part that pulls
    a grown state back: 2 * scale^2 * y per row. Fast and naive cells both do so, and agree."""
    space = enas.get_space("enas_rnn", num_nodes=5)
    sup = _supernet(space, max_hidden_norm=1e-3)
    arch = space.sample(seed=2)
    x = torch.randn(T, B, 2 * H, dtype=torch.float64)
    h = torch.randn(B, H, dtype=torch.float64)
    grads = []
    for fast in (True, False):
        sup.zero_grad(set_to_none=True)
        if fast:
            w_nodes, prev, act, out_w = sup._cell_inputs(arch)
            Y = enas.nn.cell_forward(x, h, sup.w_h0, w_nodes, prev, act, out_w, max_norm=1e-3)
        else:
            w_list, p, a, loose = sup._naive_inputs(arch)
            Y = naive_cell_forward(x, h, sup.w_h0, w_list, p, a, loose, max_norm=1e-3)
        assert torch.allclose(Y.norm(dim=-1), torch.full((T, B), 1e-3, dtype=torch.float64))  # all clipped
        (Y ** 2).sum().backward()
        grads.append(sup.w_h0.grad.clone())
    assert grads[0].norm() > 1e-9
    assert torch.allclose(grads[0], grads[1], atol=1e-14, rtol=1e-8)


def test_loose_end_weights_match_space():
    space = enas.get_space("enas_rnn", num_nodes=8)
    sup = _supernet(space)
    for arch in _archs(space, n=10, seed=2):
        out_w = sup._cell_inputs(arch)[3]
        loose = space.loose_ends(arch.tokens)
        expected = torch.zeros(8, dtype=torch.float64)
        expected[loose] = 1.0 / len(loose)
        assert torch.equal(out_w, expected)


@pytest.mark.parametrize("first_act", ["sampled", "tanh"])
def test_every_activation_is_reachable(first_act):
    space = enas.get_space("enas_rnn", num_nodes=3, first_act=first_act)
    sup = _supernet(space).eval()
    tok = _tokens(2)
    base = list(space.sample(seed=0).tokens)
    pos = space.positions("node2", ".act")[0]  # a node that is always a loose end
    outputs = []
    for a in range(4):
        tokens = list(base)
        tokens[pos] = a
        arch = enas.Arch(space, tuple(tokens))
        assert space.cell(arch.tokens)[1][2] == a
        outputs.append(sup(tok, None, arch)[0])
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(outputs[i], outputs[j], atol=1e-6)


def test_only_sampled_edges_receive_gradient():
    space = enas.get_space("enas_rnn", num_nodes=8)
    sup = _supernet(space, **DROP).train()
    tok = _tokens(3)
    for arch in _archs(space, n=3, seed=3):
        sup.zero_grad()
        logits, _ = sup(tok, None, arch)
        torch.nn.functional.cross_entropy(logits.view(-1, V), tok.view(-1)).backward()
        prev, _ = space.cell(arch.tokens)
        sampled = {edge_index(prev[i], i) for i in range(1, 8)}
        row_norm = sup.w_edges.grad.flatten(1).norm(dim=1)
        for e in range(sup.num_edges):
            assert (row_norm[e] > 0) == (e in sampled), e
        assert sup.w_h0.grad.norm() > 0 and sup.w_x.grad.norm() > 0


def test_shapes_and_arch_forms():
    space = enas.get_space("enas_rnn", num_nodes=4)
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H)
    arch = space.sample(seed=1)
    tok = _tokens()
    l1, h1 = sup(tok, None, arch)
    l2, h2 = sup(tok, sup.init_hidden(B), arch.tensor())
    assert l1.shape == (T, B, V) and h1.shape == (B, H) and sup.init_hidden(B).shape == (B, H)
    assert torch.equal(l1, l2) and torch.equal(h1, h2)
    child = enas.build_child(space, arch, vocab_size=V, hidden_size=H)
    lc, hc = child(tok)
    assert lc.shape == (T, B, V) and hc.shape == (B, H)
    with pytest.raises(enas.ArchError):
        sup(tok, None, torch.zeros(3, dtype=torch.long))
    with pytest.raises(enas.ArchError):
        sup(tok, None, enas.get_space("enas_rnn", num_nodes=5).sample(seed=0))
    with pytest.raises(enas.ConfigError):
        enas.build_supernet(space, vocab_size=V, hidden_size=H, dropout_x=1.5)


def test_hidden_norm_clipping():
    space = enas.get_space("enas_rnn", num_nodes=4)
    sup = _supernet(space, max_hidden_norm=0.1)
    arch = space.sample(seed=2)
    h = 10 * torch.randn(B, H, dtype=torch.float64)
    _, hidden = sup(_tokens(), h, arch)
    unclipped = _supernet(space)
    _, free = unclipped(_tokens(), h, arch)
    assert free.norm(dim=1).max() > 0.1  # clipping had something to do
    assert hidden.norm(dim=1).max() <= 0.1 + 1e-12


def test_dropout_only_in_training_and_drawn_per_call():
    space = enas.get_space("enas_rnn", num_nodes=4)
    sup = _supernet(space, **DROP)
    arch, tok = space.sample(seed=4), _tokens()
    sup.eval()
    assert torch.equal(sup(tok, None, arch)[0], sup(tok, None, arch)[0])
    sup.train()
    assert not torch.allclose(sup(tok, None, arch)[0], sup(tok, None, arch)[0])


def test_init_range_and_registry():
    space = enas.get_space("enas_rnn", num_nodes=3)
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H, init_range=0.04)
    assert all(p.abs().max() <= 0.04 for p in sup.parameters())
    assert isinstance(sup, RNNSupernet)
    assert isinstance(enas.build_child(space, space.sample(seed=0), vocab_size=V, hidden_size=H), RNNChild)
