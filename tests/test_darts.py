"""DARTS (enas/strategies/darts.py) on its two spaces (darts_cnn, darts_rnn): the published genotypes, the
official derivation rule, the relaxed supernet against the child, the hypergradient against the exact
one, exact resume, what an epoch logs, and the official network's parameter count."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

import enas
from enas.cli import main
from enas.config import apply_overrides
from enas.nn import build_child, build_supernet, inherit_weights
from enas.presets import preset
from enas.spaces.darts_cnn import DARTS_OPS
from enas.spaces.darts_rnn import ACTIVATIONS
from enas.strategies import start_search
from enas.strategies.darts import Darts
from enas.tasks import task_class
from enas.train import count_parameters

from conftest import SHARED_DATA

F64 = torch.float64
FASHION = SHARED_DATA / "fashion-mnist"

# official cnn/genotypes.py and rnn/genotypes.py, as published
DARTS_V1 = dict(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)])
DARTS_V2 = dict(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)])
DARTS_PTB = [("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5), ("tanh", 3),
             ("relu", 5)]


def _cnn_tokens(genotype: dict) -> tuple[int, ...]:
    return tuple(t for cell in ("normal", "reduce") for (o1, j1), (o2, j2) in zip(*[iter(genotype[cell])] * 2)
                 for t in (j1, DARTS_OPS.index(o1), j2, DARTS_OPS.index(o2)))


def test_the_zoo_holds_the_published_genotypes():
    assert enas.zoo.get("darts_v1").tokens == _cnn_tokens(DARTS_V1)
    assert enas.zoo.get("darts_v2").tokens == _cnn_tokens(DARTS_V2)
    assert enas.zoo.get("darts_ptb").tokens == tuple(t for op, j in DARTS_PTB for t in (j, ACTIVATIONS.index(op)))


def _one_hot(space, tokens) -> torch.Tensor:
    """Mixing weights with the genotype's ops on its edges and `none` on every other edge."""
    w = torch.zeros(space.mixture_shape, dtype=F64)
    if space.name == "darts_cnn":
        from enas.spaces.darts_cnn import edge_index
        for c, blocks in enumerate(space.cells(tokens)):
            for i, (j1, o1, j2, o2) in enumerate(blocks):
                w[c, edge_index(i, j1), o1 + 1] = w[c, edge_index(i, j2), o2 + 1] = 1.0
    else:
        from enas.spaces.darts_rnn import edge_index
        prev, act = space.cell(tokens)
        for i in range(1, len(prev)):
            w[edge_index(i, prev[i]), act[i] + 1] = 1.0
    w[..., 0] = (w.sum(-1) == 0).to(F64)
    return w


def _distinct_genotypes(space, n: int):
    """Sampled genotypes a derivation can give: per node two different inputs, the earlier first."""
    out, seed = [], 0
    while len(out) < n:
        tokens = list(space.sample(seed=seed).tokens)
        seed += 1
        if space.name == "darts_cnn":
            blocks = [tokens[k:k + 4] for k in range(0, len(tokens), 4)]
            if any(b[0] == b[2] for b in blocks):
                continue
            tokens = [t for b in blocks for t in (b if b[0] < b[2] else b[2:] + b[:2])]
        out.append(tuple(tokens))
    return out


@pytest.mark.parametrize("name", ["darts_cnn", "darts_rnn"])
def test_the_rule_derives_the_genotype_of_one_hot_weights(name):
    space = enas.get_space(name, num_nodes=3)
    for tokens in _distinct_genotypes(space, 5):
        assert space.derive(_one_hot(space, tokens)) == tokens


def test_the_cnn_rule_ignores_none_and_orders_the_two_edges_by_strength():
    space = enas.get_space("darts_cnn", num_nodes=2)
    w = torch.full(space.mixture_shape, 0.1, dtype=F64)
    w[0, :, 0] = 0.9                  # none is strongest everywhere: never chosen
    w[0, 1, 5] = 0.5                  # node 0: c_{k-1} by sep_conv_5x5 (op token 4), the stronger
    w[0, 0, 1] = 0.3                  #         c_{k-2} by max_pool_3x3 (op token 0)
    w[0, 4, 7] = 0.6                  # node 1: node 0 by dil_conv_5x5, then the earliest of the ties at 0.1
    normal = space.derive(w)[:8]
    assert normal == (1, 4, 0, 0, 2, 6, 0, 0)


@pytest.mark.parametrize("name", ["darts_cnn", "darts_rnn"])
def test_the_relaxed_supernet_with_one_hot_weights_is_the_child(name):
    space = enas.get_space(name, num_nodes=3)
    if name == "darts_cnn":
        kw = dict(in_channels=1, num_classes=5, channels=4, num_layers=3, image_size=12)
        x = torch.randn(3, 1, 12, 12, dtype=F64)
        run = lambda net, *arch: net(x, *arch)  # noqa: E731
    else:
        kw = dict(vocab_size=20, hidden_size=6)
        x = torch.randint(0, 20, (4, 3))
        run = lambda net, *arch: net(x, None, *arch)[0]  # noqa: E731
    torch.manual_seed(0)
    supernet = build_supernet(space, **kw).to(F64)
    for tokens in _distinct_genotypes(space, 3):
        arch = enas.Arch(space, tokens)
        child = build_child(space, arch, **kw).to(F64)
        inherit_weights(child, supernet, arch)
        for mode in (True, False):  # training (dropout off: none set) and evaluation
            supernet.train(mode), child.train(mode)
            relaxed = run(supernet, _one_hot(space, tokens))
            assert torch.allclose(relaxed, run(child), atol=1e-10, rtol=0), name
            assert torch.allclose(run(supernet, arch), run(child), atol=1e-10, rtol=0), name


def _darts(tmp_path, space: str, extra=()) -> Darts:
    """A tiny darts search in float64, as built by `enas search`."""
    task, data = ("fashion_mnist", FASHION) if space == "darts_cnn" else ("ptb", SHARED_DATA / "ptb")
    cfg = apply_overrides(preset("search", task, "tiny", space, "darts"),
                          [f"data_dir={data}", "device=cpu", "space_options.num_nodes=2", *extra])
    if space == "darts_cnn":
        cfg = apply_overrides(cfg, ["model.channels=4", "batch_size=8", "eval_batch_size=8", "num_valid=64"])
    else:  # no dropout: every loss of a step sees the same function
        cfg = apply_overrides(cfg, ["model.hidden_size=8", "batch_size=4", "bptt=5", *(f"model.dropout_{k}=0"
                                                                                        for k in "ehixo")])
    search = start_search(cfg, tmp_path / "run", progress=False)
    search.engine.supernet.to(F64)
    with torch.no_grad():
        search.policy.alpha.data = torch.randn_like(search.policy.alpha.data, dtype=F64)  # away from uniform
    return search


def _float64(batch):
    return tuple(t.to(F64) if t.is_floating_point() else t for t in batch)


@pytest.mark.parametrize("space", ["darts_cnn", "darts_rnn"])
def test_the_finite_difference_hypergradient_is_the_exact_one(space, tmp_path):
    """architect.py's finite-difference Hessian-vector product against the derivative of
    L_val(w - xi (grad L_train(w, alpha) + wd w), alpha) by double backward. The radius is small here:
    at the official 0.01 the difference spans ReLU and max-pool kinks of so small a network."""
    search = _darts(tmp_path, space, ["shared.weight_decay=1e-3", "darts.fd_radius=1e-7"])
    e, policy = search.engine, search.policy
    if space == "darts_rnn":
        policy.c.unrolled_clip = False  # the clip's coefficient is a constant to the official step
    torch.manual_seed(1)
    train, valid = _float64(e.next_batch()), _float64(e.task.alpha_inputs(e.supernet))
    e.supernet.train()
    got = policy.unrolled_gradient(train, valid)[0]

    from enas.optim import lr_at
    names, w = zip(*e.supernet.named_parameters())
    xi, wd = lr_at(e.cfg.shared, e.epoch), e.cfg.shared.weight_decay
    torch.manual_seed(1)
    g = torch.autograd.grad(policy._loss(train)[0], w, create_graph=True)
    unrolled = {n: p - xi * (gi + wd * p) for n, p, gi in zip(names, w, g)}
    exact = torch.autograd.grad(policy._loss(valid, unrolled)[0], policy.alpha)[0]
    assert torch.linalg.vector_norm(got - exact) <= 1e-4 * torch.linalg.vector_norm(exact)
    assert torch.linalg.vector_norm(got - exact) > 0, "the finite difference is not the exact product"


@pytest.mark.parametrize("space", ["darts_cnn", "darts_rnn"])
def test_first_order_is_the_plain_validation_gradient(space, tmp_path, monkeypatch):
    search = _darts(tmp_path, space)
    e, policy = search.engine, search.policy
    valid = _float64(e.task.alpha_inputs(e.supernet))
    monkeypatch.setattr(e.task, "alpha_inputs", lambda model: valid)
    e.supernet.train()
    expected = torch.autograd.grad(policy._loss(valid)[0], policy.alpha)[0]
    before = policy.alpha.detach().clone()
    policy.step(_float64(e.next_batch()))
    assert torch.equal(policy.alpha.grad, expected)
    assert not torch.equal(policy.alpha.detach(), before), "Adam moved alpha"


@pytest.mark.parametrize("space,order", [("darts_cnn", 2), ("darts_rnn", 1)])
def test_a_darts_search_resumes_exactly(space, order, tmp_path):
    task, data = ("fashion_mnist", FASHION) if space == "darts_cnn" else ("ptb", SHARED_DATA / "ptb")
    cfg = apply_overrides(preset("search", task, "tiny", space, "darts"),
                          [f"data_dir={data}", "device=cpu", f"darts.order={order}", "shared_steps=3",
                           "eval_max_batches=1"])
    if space == "darts_cnn":
        cfg = apply_overrides(cfg, ["model.channels=4", "batch_size=8", "eval_batch_size=8", "num_valid=64"])
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert Darts.start(cfg, whole, progress=False).run() is True
    assert Darts.start(cfg, parts, progress=False).run(max_units=4) is False  # mid epoch 2
    assert Darts.resume(parts, progress=False).run() is True
    a, b = (torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (whole, parts))
    assert torch.equal(a["alpha"], b["alpha"])
    assert all(torch.equal(x, y) for x, y in zip(a["alpha_opt"]["state"][0].values(),
                                                  b["alpha_opt"]["state"][0].values()))
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])


def test_an_epoch_logs_what_darts_users_watch(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", "--strategy", "darts", "--space", "darts_cnn", "--task", "fashion_mnist", "--preset",
                 "tiny", "--data-dir", str(FASHION), "--logdir", str(run), "--device", "cpu", "--quiet",
                 "--set", "shared_steps=3"]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert {"darts/alpha_normal", "darts/alpha_reduce", "darts/genotype_cell"} <= set(tags["images"])
    assert {"darts/alpha_entropy", "darts/parameter_free_ops", "darts/relaxed_valid_acc", "valid/acc"} <= \
        set(tags["scalars"])
    assert "darts/genotype/text_summary" in tags["tensors"]
    assert len(events.Images("darts/alpha_normal")) == 2, "one heatmap per epoch"
    rows = [json.loads(x) for x in (run / "archs.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["phase"] == "epoch"] == [0, 1]
    assert all(0 <= r["metric"] <= 1 and len(r["arch"].split()) == 16 for r in rows)
    assert all(0 <= r["relaxed_metric"] <= 1 for r in rows if r["phase"] == "epoch")

    assert main(["derive", str(run), "--quiet", "--json"]) == 0
    derived = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert derived["arch"] == rows[-1]["arch"], "derive writes the last epoch's genotype"
    assert "DARTS rule" in derived["how"]


def test_the_official_final_network_has_the_official_parameter_count(capsys):
    """DARTS_V2 at CIFAR-10 size (20 cells, 36 channels): 3,349,342 parameters as the official
    count_parameters_in_MB counts them (without the auxiliary head), 3,825,768 with it."""
    cfg = preset("train", "cifar10", "paper", "darts_cnn")
    arch = enas.zoo.get("darts_v2")
    facts = SimpleNamespace(data=SimpleNamespace(channels=3, num_classes=10, image_size=32))
    model = build_child(arch.space, arch, **task_class("cifar10").model_kwargs(facts, cfg.model))
    assert (count_parameters(model, without_aux=True), count_parameters(model)) == (3_349_342, 3_825_768)


def test_darts_needs_a_relaxed_space():
    with pytest.raises(enas.ConfigError, match="darts cannot search enas_micro on cifar10: DARTS needs a space "
                                               "with a relaxed supernet"):
        preset("search", "cifar10", "tiny", "enas_micro", "darts")
    from enas.compare import entrants
    assert "darts" not in [s.name for s in entrants("enas_micro", "cifar10")]
    assert "darts" in [s.name for s in entrants("darts_cnn", "cifar10")]
