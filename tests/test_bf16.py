"""bf16 autocast of the recurrent supernet (search option `bf16`): the cell's hand-written kernels run
in bfloat16 on cast inputs, the float32 weights get float32 gradients, and the loss stays close to
the float32 one."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import enas
from enas.config import apply_overrides
from enas.nn import rnn_batched
from enas.strategies.enas import Enas

V, H, T, B = 300, 32, 12, 4


def _net_and_batch(seed=0):
    torch.manual_seed(seed)
    space = enas.get_space("enas_rnn", num_nodes=6)
    net = enas.build_supernet(space, vocab_size=V, hidden_size=H, max_hidden_norm=5.0)
    x, y = torch.randint(0, V, (T, B)), torch.randint(0, V, (T, B))
    return space, net, x, y


def test_bf16_training_loss_and_gradients_follow_float32():
    space, net, x, y = _net_and_batch()
    arch = space.sample(seed=3).tensor()
    results = []
    for bf16 in (False, True):
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, hidden = net(x, None, arch)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        loss.backward()
        assert loss.dtype == torch.float32
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in net.parameters())
        results.append((loss.item(), net.w_edges.grad.to_dense() if net.w_edges.grad.is_sparse else net.w_edges.grad))
    (loss32, g32), (loss16, g16) = results
    assert abs(loss16 - loss32) < 0.02 * loss32
    assert (g16 - g32).norm() < 0.05 * g32.norm(), ((g16 - g32).norm() / g32.norm()).item()
    assert g16.abs().sum() > 0


def test_bf16_batched_rewards_follow_float32():
    space, net, x, y = _net_and_batch(1)
    tokens = torch.stack([space.sample(seed=s).tensor() for s in range(5)])
    fp32 = rnn_batched.mean_cross_entropy(net, tokens, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = rnn_batched.mean_cross_entropy(net, tokens, x, y)
    assert bf16.dtype == torch.float32
    assert torch.allclose(bf16, fp32, rtol=0.02)


def test_a_bf16_search_learns(tiny_search_cfg, tmp_path):
    cfg = apply_overrides(tiny_search_cfg, ["bf16=true", "epochs=1", "shared_steps=20", "log_every=10"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    assert search.run()
    losses = [loss for _, loss in search.engine.shared_losses]
    assert losses[-1] < 9.0, losses  # below uniform guessing, ln 10,000 = 9.21
