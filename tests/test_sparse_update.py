"""Row-sparse shared updates of the recurrent supernet (enas/optim.py, enas/nn/row_decay.py LazyRowDecay):
the same numbers as the dense SGD step, a skipped step that changes no bit, the dense fallback, and
state that survives a state_dict round trip."""
import random

import pytest
import torch
import torch.nn.functional as F

import enas
from enas.config import OptimConfig
from enas.nn.row_decay import LazyRowDecay, _row_sq_norms
from enas.optim import guarded_step, make_sgd, set_lr

V, H, T, B = 29, 5, 6, 4
DROP = dict(dropout_e=0.1, dropout_x=0.2, dropout_h=0.2, dropout_o=0.2)
# decay strong enough to move the weights visibly in 20 steps, and a clip that is active
CFG = OptimConfig(lr=0.8, grad_clip=0.05, weight_decay=0.05)


def _supernet(space):
    torch.manual_seed(0)
    return enas.build_supernet(space, vocab_size=V, hidden_size=H, init_range=0.3, max_hidden_norm=2.0,
                               **DROP).double()


def _batch(step):
    g = torch.Generator().manual_seed(100 + step)
    return torch.randint(0, V, (T + 1, B), generator=g)


def _loss(net, step, arch):
    tokens = _batch(step)
    torch.manual_seed(step)  # the same dropout masks on both paths
    logits, _ = net(tokens[:-1], None, arch)
    return F.cross_entropy(logits.reshape(-1, V), tokens[1:].reshape(-1))


def _train(net, opt, archs, cfg=CFG, lr_change=(10, 0.3), loss_scale=None):
    losses = []
    for step, arch in enumerate(archs):
        if step == lr_change[0]:
            set_lr(opt, lr_change[1])
        loss = _loss(net, step, arch)
        if loss_scale is not None:
            loss = loss * loss_scale(step)
        losses.append(loss.item())
        guarded_step(opt, loss, cfg)
    return losses


def _archs(space, n=20, seed=0):
    rng = random.Random(seed)
    return [space.sample(rng=rng).tensor() for _ in range(n)]


def test_sparse_step_equals_dense_step(monkeypatch):
    space = enas.get_space("enas_rnn", num_nodes=8)
    archs = _archs(space)
    norms = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy(*args, **kw):
        norms.append(float(real_clip(*args, **kw)))
        return torch.tensor(norms[-1], dtype=torch.float64)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    dense = _supernet(space)
    dense_losses = _train(dense, torch.optim.SGD(dense.parameters(), lr=CFG.lr), archs)
    assert min(norms) > CFG.grad_clip, "the clip must be active on every step"

    sparse = _supernet(space)
    opt = make_sgd(sparse, CFG)
    assert sparse.row_sparse and set(opt.lazy_decay) == {sparse.w_edges}
    loss = _loss(sparse, 0, archs[0])
    loss.backward()
    assert sparse.w_edges.grad.is_sparse and sparse.w_edges.grad._values().shape == (7, H, 2 * H)
    sparse.zero_grad(set_to_none=True)
    sparse_losses = _train(sparse, opt, archs)
    ledger = sparse.w_edges_decay
    assert (ledger.mark != ledger.log_scale).any(), "some rows must still owe decay"
    assert sparse_losses == pytest.approx(dense_losses, abs=1e-10)
    sparse.materialize()
    for (name, a), b in zip(dense.named_parameters(), sparse.parameters()):
        assert torch.allclose(a, b, atol=1e-10, rtol=0), (name, (a - b).abs().max())
    assert not torch.allclose(dense.w_edges, _supernet(space).w_edges, atol=1e-3)  # they did move


def test_pending_decay_is_applied_by_every_reader():
    """A forward, inheritance and materialize all see the decayed rows, not the stored ones."""
    space = enas.get_space("enas_rnn", num_nodes=6)
    archs = _archs(space, n=8, seed=1)
    net = _supernet(space)
    _train(net, make_sgd(net, CFG), archs, lr_change=(99, 0))
    assert net.w_edges_decay.pending
    arch = enas.Arch(space, tuple(space.sample(seed=11).tokens))
    net.eval()
    tokens = _batch(0)[:-1]
    with torch.no_grad():
        lazily = net(tokens, None, arch)[0]
        child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, max_hidden_norm=2.0, **DROP).double()
        enas.inherit_weights(child, net, arch)  # materialises
        assert not net.w_edges_decay.pending
        assert torch.allclose(child.eval()(tokens)[0], lazily, atol=1e-10, rtol=0)
        assert torch.allclose(net(tokens, None, arch)[0], lazily, atol=1e-10, rtol=0)


def test_a_non_finite_step_changes_no_bit():
    space = enas.get_space("enas_rnn", num_nodes=6)
    archs = _archs(space, n=6, seed=2)
    net = _supernet(space)
    opt = make_sgd(net, CFG)
    _train(net, opt, archs[:4])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for bad in (float("nan"), float("inf")):
        ok = guarded_step(opt, _loss(net, 4, archs[4]) * bad, CFG)
        assert not bool(ok)
        after = net.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), "a skipped step changed the state"
    assert bool(guarded_step(opt, _loss(net, 5, archs[5]), CFG))
    assert not torch.equal(before["w_edges"], net.w_edges)


def test_momentum_falls_back_to_dense():
    space = enas.get_space("enas_rnn", num_nodes=6)
    archs = _archs(space, n=8, seed=3)
    cfg = OptimConfig(lr=0.5, momentum=0.9, grad_clip=0.05, weight_decay=0.05)
    net = _supernet(space)
    opt = make_sgd(net, cfg)
    assert not net.row_sparse and opt.lazy_decay == {}
    loss = _loss(net, 0, archs[0])
    loss.backward()
    assert not net.w_edges.grad.is_sparse

    # momentum turned on after row-sparse steps: the pending decay is applied, then dense steps
    def run(make):
        net = _supernet(space)
        opt = make(net)
        for step, arch in enumerate(archs):
            if step == 3:
                opt.param_groups[0]["momentum"] = 0.9
            guarded_step(opt, _loss(net, step, arch), cfg)
        net.materialize()
        return net

    plain = OptimConfig(lr=0.5, grad_clip=0.05, weight_decay=0.05)
    a = run(lambda n: torch.optim.SGD(n.parameters(), lr=0.5))
    b = run(lambda n: make_sgd(n, plain))
    assert b.row_sparse and not b.w_edges_decay.pending
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.allclose(x, y, atol=1e-10, rtol=0)


def test_state_dict_round_trip_continues_to_the_bit():
    space = enas.get_space("enas_rnn", num_nodes=6)
    archs = _archs(space, n=10, seed=4)
    whole = _supernet(space)
    _train(whole, make_sgd(whole, CFG), archs, lr_change=(99, 0))

    first = _supernet(space)
    _train(first, make_sgd(first, CFG), archs[:5], lr_change=(99, 0))
    state = {k: v.clone() for k, v in first.state_dict().items()}
    assert {"w_edges_decay.log_scale", "w_edges_decay.mark", "w_edges_decay.sq_norm"} <= set(state)
    resumed = _supernet(space)
    opt = make_sgd(resumed, CFG)
    resumed.load_state_dict(state)
    for step in range(5, 10):
        guarded_step(opt, _loss(resumed, step, archs[step]), CFG)
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k

    # a state_dict from before the ledger: true rows, loaded with an empty ledger
    old = {k: v for k, v in _supernet(space).state_dict().items() if not k.startswith("w_edges_decay.")}
    fresh = _supernet(space)
    make_sgd(fresh, CFG)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.w_edges_decay.mark, torch.zeros(15, dtype=torch.float64))
    # loaded into a dense supernet, pending decay is applied at once
    dense = _supernet(space)
    dense.load_state_dict(state)
    assert not dense.w_edges_decay.pending
    first.materialize()
    assert torch.allclose(dense.w_edges, first.w_edges, atol=0, rtol=0)


def test_a_dense_runs_state_continues_row_sparse_as_it_would_dense():
    """A run with dense updates (a CUDA-graphed search) never writes the ledger, so the row norms it
    saves are those of its first weights. Loaded for row-sparse updates, the ledger is rebuilt from the
    saved rows, and the steps that follow are the dense run's own."""
    space = enas.get_space("enas_rnn", num_nodes=6)
    archs = _archs(space, n=10, seed=6)
    dense = _supernet(space)
    dense_opt = make_sgd(dense, CFG, row_sparse=False)
    _train(dense, dense_opt, archs[:5], lr_change=(99, 0))
    state = {k: v.clone() for k, v in dense.state_dict().items()}
    assert not torch.allclose(state["w_edges_decay.sq_norm"], _row_sq_norms(state["w_edges"])), "stale norms"
    sparse = _supernet(space)
    sparse_opt = make_sgd(sparse, CFG)
    sparse.load_state_dict(state)
    assert torch.equal(sparse.w_edges_decay.sq_norm, _row_sq_norms(sparse.w_edges))
    for step in range(5, 10):
        guarded_step(dense_opt, _loss(dense, step, archs[step]), CFG)
        guarded_step(sparse_opt, _loss(sparse, step, archs[step]), CFG)
    sparse.materialize()
    for (name, a), b in zip(dense.named_parameters(), sparse.parameters()):
        assert torch.allclose(a, b, atol=1e-10, rtol=0), (name, (a - b).abs().max())


class _Rows(torch.nn.Module):
    """A stacked weight read by row index, repeats allowed: out = sum over rows of x @ weight[row]."""

    def __init__(self, sparse: bool):
        super().__init__()
        torch.manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(6, 3, 3, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.randn(3, dtype=torch.float64))
        self.decay = LazyRowDecay(6)
        self.decay.reset(self.weight)
        self.sparse = sparse

    def use_row_sparse_gradients(self, on):
        return {self.weight: self.decay} if on and self.sparse else {}

    def forward(self, x, rows):
        w = self.decay.gather(self.weight, rows) if self.sparse else self.weight.index_select(0, rows)
        return torch.einsum("bi,nij->bj", x, w) + self.bias


def test_repeated_rows_are_summed():
    cfg = OptimConfig(lr=0.3, grad_clip=0.5, weight_decay=0.1)
    results = []
    for sparse in (False, True):
        model = _Rows(sparse)
        opt = make_sgd(model, cfg)
        g = torch.Generator().manual_seed(0)
        for step in range(12):
            rows = torch.randint(0, 6, (4,), generator=g)
            rows[1] = rows[3]  # a row read twice
            x = torch.randn(5, 3, generator=g, dtype=torch.float64)
            guarded_step(opt, model(x, rows).square().sum(), cfg)
        model.decay.materialize(model.weight)
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)



def test_two_forwards_in_one_step_sum_their_rows():
    """Two architectures in one loss: a row both read gets the sum of both gradients."""
    space = enas.get_space("enas_rnn", num_nodes=4)  # 6 edges: two cells share rows
    archs = _archs(space, n=24, seed=5)
    results = []
    for make in (lambda n: torch.optim.SGD(n.parameters(), lr=CFG.lr), lambda n: make_sgd(n, CFG)):
        net = _supernet(space)
        opt = make(net)
        for step in range(12):
            loss = _loss(net, step, archs[2 * step]) + _loss(net, step + 50, archs[2 * step + 1])
            guarded_step(opt, loss, CFG)
        net.materialize()
        results.append(list(net.parameters()))
    for a, b in zip(*results):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)


def test_a_search_with_weight_decay_resumes_to_the_bit(tiny_search_cfg, tmp_path):
    """The checkpoint holds the rows with their decay pending and the ledger: a resumed search with
    weight decay and row-sparse updates ends with the same bits as an uninterrupted one."""
    from enas.config import apply_overrides
    from enas.strategies.enas import Enas

    cfg = apply_overrides(tiny_search_cfg, ["shared.weight_decay=0.01", "epochs=1"])
    whole = Enas.start(cfg, tmp_path / "whole", progress=False)
    assert whole.engine.supernet.row_sparse
    whole.run()
    assert Enas.start(cfg, tmp_path / "parts", progress=False).run(max_units=4) is False
    assert Enas.resume(tmp_path / "parts", progress=False).run() is True
    a, b = (torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)["supernet"]
            for run in ("whole", "parts"))
    assert (a["w_edges_decay.mark"] != a["w_edges_decay.log_scale"]).any(), "decay must be pending"
    for key in a:
        assert torch.equal(a[key], b[key]), key
