import math

import pytest
import torch

from enas.config import OptimConfig
from enas.optim import guarded_step, make_sgd


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_guarded_step_skips_non_finite_losses(weight_decay, bad):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    cfg = OptimConfig(lr=0.5, grad_clip=0.25, weight_decay=weight_decay)
    opt = make_sgd(model, cfg)
    x = torch.randn(8, 4)
    before = [p.clone() for p in model.parameters()]
    ok = guarded_step(opt, model(x).sum() * bad, cfg)
    assert not bool(ok)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    ok = guarded_step(opt, model(x).pow(2).mean(), cfg)
    assert bool(ok)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_guarded_step_is_sgd_with_decay_and_clip():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3, bias=False)
    cfg = OptimConfig(lr=0.1, grad_clip=0.01, weight_decay=0.5)
    w = model.weight.detach().clone()
    x = torch.randn(8, 4)
    loss = model(x).pow(2).mean()
    grad = torch.autograd.grad(loss, model.weight)[0] + 0.5 * w
    expected = w - 0.1 * grad * min(1.0, 0.01 / (grad.norm().item() + 1e-6))
    guarded_step(make_sgd(model, cfg), model(x).pow(2).mean(), cfg)
    assert torch.allclose(model.weight, expected, atol=1e-7)
    assert not model.weight.grad.requires_grad and math.isfinite(model.weight.grad.norm().item())
