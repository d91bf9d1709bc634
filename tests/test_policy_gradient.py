"""The one controller update (enas/policy_gradient.py): loss, baseline, entropy bonus, skip penalty, clip."""
import pytest
import torch

import enas
from enas.config import ControllerConfig
from enas.controller import Controller
from enas.policy_gradient import moving_average, reinforce

F64 = torch.float64


def make(space, seed=0):
    torch.manual_seed(seed)
    return Controller(space, hidden_size=8, tanh_constant=2.5).to(F64)


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def test_baseline_moves_once_per_architecture_in_order():
    rewards, d, b0 = torch.tensor([1.0, 3.0, 2.0, 5.0], dtype=F64), 0.9, 0.5
    b = moving_average(torch.tensor(b0, dtype=F64), rewards, d)
    closed = [d ** (i + 1) * b0 + (1 - d) * sum(d ** (i - j) * rewards[j].item() for j in range(i + 1))
              for i in range(4)]
    assert torch.allclose(b, torch.tensor(closed, dtype=F64), atol=1e-15)
    assert abs(b[-1].item() - (d * b0 + (1 - d) * rewards.mean().item())) > 0.1  # not once per batch mean


def test_loss_baseline_and_gradient_have_the_documented_values():
    space = enas.get_space("enas_rnn", num_nodes=3)
    ctrl = make(space)
    opt = torch.optim.SGD(ctrl.parameters(), lr=0.0)  # values and gradients only
    c = ControllerConfig(entropy_weight=0.01, baseline_decay=0.8)
    baseline, rewards = torch.zeros((), dtype=F64), []  # b_0 = 0.0, as the official variable
    for step in range(2):
        s = ctrl.sample(4, generator=torch.Generator().manual_seed(step))
        r = torch.tensor([0.2, 0.4, 0.1, 0.3], dtype=F64) + step
        R = r + 0.01 * s.entropy.detach()
        b = moving_average(baseline, R, 0.8)
        update = reinforce(ctrl, opt, s, r, baseline, c)
        assert torch.allclose(update.reward, R) and torch.allclose(update.baseline, b[-1])
        # each architecture's advantage uses the baseline that includes its own reward: decay * (R_i - b_{i-1})
        before = torch.cat([baseline[None], b[:-1]])
        assert torch.allclose(update.scalars["controller/advantage"], (0.8 * (R - before)).mean())
        loss = -((R - b) * s.log_prob.detach()).mean()
        assert torch.allclose(update.scalars["controller/loss"], loss)
        grads = [p.grad.clone() for p in ctrl.parameters()]
        ctrl.zero_grad()
        (-((R - b) * ctrl.log_prob(s.tokens).log_prob).mean()).backward()
        assert all(torch.allclose(g, p.grad) for g, p in zip(grads, ctrl.parameters()))
        assert "controller/skip_rate" not in update.scalars  # enas_rnn has no skip connections
        baseline, rewards = update.baseline, rewards + R.tolist()
    assert torch.allclose(baseline, moving_average(torch.zeros((), dtype=F64), torch.tensor(rewards, dtype=F64),
                                                   0.8)[-1])


def test_grad_clip_bounds_the_gradient_norm():
    space = enas.get_space("enas_rnn", num_nodes=3)
    tokens = make(space).sample(8, generator=torch.Generator().manual_seed(0)).tokens
    reward = torch.linspace(0, 1, 8, dtype=F64)
    steps = {}
    for clip in (0.0, 1e-3):
        ctrl = make(space)
        before = flat(ctrl)
        reinforce(ctrl, torch.optim.SGD(ctrl.parameters(), lr=1.0), ctrl.log_prob(tokens), reward,
                  torch.zeros((), dtype=F64), ControllerConfig(grad_clip=clip))
        steps[clip] = (flat(ctrl) - before).norm().item()  # SGD at lr 1: the step is the gradient
    assert steps[0.0] > 1e-2 and steps[1e-3] == pytest.approx(1e-3, rel=1e-3)


def test_skip_penalty_enters_the_loss_and_pulls_the_skip_rate_to_its_target():
    space = enas.get_space("enas_macro", num_layers=5)
    ctrl = make(space)
    with torch.no_grad():
        ctrl.attn_v.weight.fill_(0.5)  # skip probabilities far from the target 0.4
    opt = torch.optim.Adam(ctrl.parameters(), lr=0.05)
    c = ControllerConfig(entropy_weight=0.0, skip_weight=1.0)
    zero = torch.zeros(16, dtype=F64)  # no reward, no advantage: only the skip penalty acts
    kls = []
    for _ in range(30):
        s = ctrl.sample(16)
        update = reinforce(ctrl, opt, s, zero, torch.zeros((), dtype=F64), c)
        assert torch.allclose(update.scalars["controller/loss"], s.skip_kl.detach().mean())
        assert "controller/skip_rate" in update.scalars
        kls.append(s.skip_kl.mean().item())
    assert kls[-1] < 0.2 * kls[0]
