"""The controller: valid samples, exact log-probabilities, reachability, learning, logit shaping."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

import enas
from enas.controller import ANCHORS, Controller
from enas.controller import make_controller
from enas.spaces import Choice, Predecessor, SearchSpace, Subset
from enas.spaces.enas_micro import MICRO_OP_BIAS, MICRO_OP_BIAS_INIT
from enas.strategies import preset


class AllKindsSpace(SearchSpace):
    """A tiny unregistered space with every decision kind, two initial anchors and an empty subset."""

    name = "all_kinds_test"
    initial_anchors = 2

    def build_decisions(self):
        return [
            Choice("n2.op", 3),
            Predecessor("n2.in", 2),
            Subset("n2.skip", 0),                  # nothing to choose yet: exercises the empty path
            Subset("n2.skip2", 2, anchor=True),
            Choice("n3.op", 3),
            Predecessor("n3.in", 3),
            Choice("n3.width", 2, group="width"),  # a second Choice group of another size
            Subset("n3.skip", 3, anchor=True),
            Predecessor("out", 4),
        ]


class TooFewAnchorsSpace(SearchSpace):
    name = "too_few_anchors_test"

    def build_decisions(self):
        return [Choice("a", 2, anchor=True), Predecessor("b", 2)]


def spaces():
    out = [enas.get_space(name) for name in enas.list_spaces()]
    out += [enas.get_space("enas_rnn", num_nodes=4, first_act="tanh", output="all"), AllKindsSpace()]
    return out


SPACES = spaces()
IDS = [f"{s.name}-{i}" for i, s in enumerate(SPACES)]


def has_subset(space):
    return any(isinstance(d, Subset) and d.num_options for d in space.decisions)


def max_entropy(space):
    return sum(d.num_options * math.log(2) if isinstance(d, Subset) else math.log(d.num_options)
               for d in space.decisions)


def subset_positions(space):
    return [o + k for d, o in zip(space.decisions, space.offsets)
            if isinstance(d, Subset) for k in range(d.width)]


def make(space, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return Controller(space, hidden_size=kw.pop("hidden_size", 16), **kw).to(dtype)


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_sample_gives_valid_architectures_of_the_right_shapes(space):
    ctrl = make(space, dtype=torch.float32, temperature=5.0, tanh_constant=2.5)
    s = ctrl.sample(7)
    assert s.tokens.shape == (7, space.num_tokens) and s.tokens.dtype == torch.long
    for t in (s.log_prob, s.entropy, s.skip_kl, s.skip_rate):
        assert t.shape == (7,) and torch.isfinite(t).all()
    assert (s.log_prob < 0).all() and (s.entropy > 0).all()
    archs = s.archs(space)
    assert [a.tokens for a in archs] == [tuple(r) for r in s.tokens.tolist()]
    assert ctrl.to_archs(s.tokens) == archs
    assert ((s.skip_rate >= 0) & (s.skip_rate <= 1)).all()
    if not has_subset(space):
        assert (s.skip_kl == 0).all() and (s.skip_rate == 0).all()


@pytest.mark.parametrize("anchors", ANCHORS)
@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_log_prob_of_sampled_tokens_equals_the_sample(space, anchors):
    ctrl = make(space, temperature=5.0, tanh_constant=2.5, anchors=anchors, num_layers=2)
    s = ctrl.sample(32)
    for again in (ctrl.log_prob(s.tokens), ctrl.log_prob(s.archs(space))):
        assert torch.equal(again.tokens, s.tokens)
        for a, b in zip(again[1:], s[1:]):
            assert (a - b).abs().max().item() < 1e-10


@pytest.mark.parametrize("anchors", ANCHORS)
@pytest.mark.parametrize("space", [enas.get_space("enas_rnn", num_nodes=3), AllKindsSpace()],
                         ids=["rnn3", "all"])
def test_probabilities_of_all_architectures_sum_to_one(space, anchors):
    ctrl = make(space, tanh_constant=1.5, anchors=anchors)
    with torch.no_grad():  # sharper than the init so that a normalisation error would show
        for p in ctrl.parameters():
            p.mul_(10)
    every = all_tokens(space)
    assert every.shape[0] == space.size()
    total = ctrl.log_prob(every).log_prob.exp().sum().item()
    assert abs(total - 1.0) < 1e-10


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_every_option_of_every_decision_is_reachable(space):
    ctrl = make(space, dtype=torch.float32, tanh_constant=0.05)  # nearly uniform
    gen = torch.Generator().manual_seed(0)
    tokens = ctrl.sample(3000, generator=gen).tokens
    column = 0
    for d in space.decisions:
        for _ in range(d.width):
            hi = 2 if isinstance(d, Subset) else d.num_options
            assert set(tokens[:, column].tolist()) == set(range(hi)), d.name
            column += 1


@pytest.mark.parametrize("space,position,option", [
    (enas.get_space("enas_rnn", num_nodes=4), 0, 3),  # node0 activation: sigmoid
    (enas.get_space("enas_rnn", num_nodes=4), 3, 0),  # node2's predecessor: node 0
    (AllKindsSpace(), 1, 0),                            # a predecessor over the initial anchors
    (AllKindsSpace(), 9, 1),                            # one skip bit
], ids=["choice", "predecessor", "initial-anchor", "subset-bit"])
def test_reinforce_raises_the_probability_of_the_rewarded_option(space, position, option):
    ctrl = make(space, dtype=torch.float32, hidden_size=32)
    gen = torch.Generator().manual_seed(1)

    def frequency():
        with torch.no_grad():
            return (ctrl.sample(2000, generator=gen).tokens[:, position] == option).float().mean().item()

    before = frequency()
    opt = torch.optim.Adam(ctrl.parameters(), lr=0.03)
    for _ in range(40):
        s = ctrl.sample(64, generator=gen)
        reward = (s.tokens[:, position] == option).float()
        loss = -((reward - reward.mean()) * s.log_prob).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = frequency()
    assert before < 0.65 and after > 0.9, (before, after)


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_tanh_constant_and_temperature_move_entropy_as_expected(space):
    ctrl = make(space)
    with torch.no_grad():  # peaky logits, so that shaping has something to flatten
        for p in ctrl.parameters():
            p.mul_(30)
    tokens = ctrl.sample(16).tokens

    def entropy(temperature=None, tanh_constant=None):
        ctrl.temperature, ctrl.tanh_constant = temperature, tanh_constant
        return ctrl.log_prob(tokens).entropy

    top = max_entropy(space)
    raw = entropy()
    assert (raw < top - 0.5).all()
    # Teacher forcing makes the LSTM states independent of the shaping, so every decision's
    # entropy, hence the sum, is monotone: falling with the tanh constant, rising with temperature.
    by_c = [entropy(tanh_constant=c) for c in (1e-4, 0.1, 0.5, 1.0, 2.5, 10.0)]
    by_t = [entropy(temperature=t) for t in (0.5, 1.0, 5.0, 100.0, 1e5)]
    for a, b in zip(by_c, by_c[1:]):
        assert (a >= b - 1e-12).all()
    for a, b in zip(by_t, by_t[1:]):
        assert (a <= b + 1e-12).all()
    assert (by_c[0] - top).abs().max() < 1e-6 and (by_t[-1] - top).abs().max() < 1e-3
    assert (by_c[-1] - raw).abs().max() > 0  # the tanh constant was applied
    assert torch.allclose(entropy(temperature=0, tanh_constant=0), raw)  # 0 means off, as None


class OpThenIndexSpace(SearchSpace):
    name = "op_then_index_test"
    initial_anchors = 2

    def build_decisions(self):
        return [Choice("op", 3), Predecessor("in", 2)]


def all_tokens(space):
    ranges = []
    for d in space.decisions:
        ranges += [range(2)] * d.width if isinstance(d, Subset) else [range(d.num_options)]
    return torch.tensor(list(itertools.product(*ranges)), dtype=torch.long)


def test_op_tanh_reduce_flattens_ops_only():
    space = OpThenIndexSpace()
    ctrl = make(space, tanh_constant=2.0)
    with torch.no_grad():
        for p in ctrl.parameters():
            p.mul_(30)
    every = all_tokens(space)  # rows (op, index)
    base = ctrl.log_prob(every).log_prob.exp().view(3, 2)
    ctrl.op_tanh_reduce = 1e12
    flat = ctrl.log_prob(every).log_prob.exp().view(3, 2)
    assert (base.sum(1) - 1 / 3).abs().max() > 0.05           # ops were far from uniform
    assert (flat.sum(1) - 1 / 3).abs().max() < 1e-9           # ... and now are uniform
    cond = lambda p: p / p.sum(1, keepdim=True)               # P(index | op): untouched
    assert (cond(flat) - cond(base)).abs().max() < 1e-12


@pytest.mark.parametrize("space", [s for s in SPACES if has_subset(s)], ids=lambda s: s.name)
def test_skip_kl_is_positive_and_finite_and_skip_rate_counts_bits(space):
    ctrl = make(space, skip_target=0.4, tanh_constant=2.5)
    s = ctrl.sample(50)
    assert torch.isfinite(s.skip_kl).all() and (s.skip_kl > 0).all()
    bits = s.tokens[:, subset_positions(space)].double()
    assert torch.allclose(s.skip_rate, bits.mean(1), atol=1e-12)
    assert ((s.skip_rate >= 0) & (s.skip_rate <= 1)).all()

    # With the attention switched off every bit is a fair coin: the KL has a closed form.
    with torch.no_grad():
        ctrl.attn_v.weight.zero_()
    s = ctrl.sample(5)
    rho = 0.4
    per_bit = 0.5 * math.log(0.5 / rho) + 0.5 * math.log(0.5 / (1 - rho))
    subsets = [d.num_options for d in space.decisions if isinstance(d, Subset) and d.num_options]
    expected = per_bit * sum(subsets) / len(subsets)  # summed over anchors, averaged over decisions
    assert (s.skip_kl - expected).abs().max() < 1e-12


def test_gradients_reach_every_parameter():
    ctrl = make(AllKindsSpace(), op_bias_init=(1.0, 0.0, 0.0), tanh_constant=2.5)
    s = ctrl.sample(64)
    (s.log_prob.sum() + s.entropy.sum() + s.skip_kl.sum()).backward()
    for name, p in ctrl.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_parameters_are_uniform_in_init_range():
    ctrl = make(enas.get_space("enas_rnn"), hidden_size=100, init_range=0.1)
    flat = torch.cat([p.detach().flatten() for p in ctrl.parameters()])
    assert flat.abs().max() <= 0.1 and flat.abs().max() > 0.09 and abs(flat.mean()) < 0.01


def test_greedy_and_generator_are_deterministic():
    space = enas.get_space("enas_rnn", num_nodes=3)
    ctrl = make(space, tanh_constant=2.5)
    with torch.no_grad():
        for p in ctrl.parameters():
            p.mul_(10)
    g = ctrl.sample(4, greedy=True).tokens
    assert (g == g[0]).all() and torch.equal(ctrl.sample(4, greedy=True).tokens, g)
    # greedy's first decision is the mode of the first decision's distribution
    every = all_tokens(space)
    p = ctrl.log_prob(every).log_prob.exp()
    first = torch.zeros(4, dtype=p.dtype).index_add_(0, every[:, 0], p)
    assert first.argmax().item() == g[0, 0].item()
    a = ctrl.sample(6, generator=torch.Generator().manual_seed(3)).tokens
    b = ctrl.sample(6, generator=torch.Generator().manual_seed(3)).tokens
    assert torch.equal(a, b)


def test_fixed_op_bias_and_index_distance_penalty():
    # With the tanh constant ~0 every learned logit is ~0: only the fixed priors remain.
    space = AllKindsSpace()
    ctrl = make(space, tanh_constant=1e-12, op_bias=(0.25, 0.0, -0.5))
    base = ctrl.sample(1, greedy=True).tokens.repeat(3, 1)
    base[:, 0] = torch.arange(3)  # the first op decision
    lp = ctrl.log_prob(base).log_prob
    assert torch.allclose(lp - lp[0], torch.tensor([0.0, -0.25, -0.75], dtype=lp.dtype), atol=1e-9)

    rnn = enas.get_space("enas_rnn", num_nodes=3)
    ctrl = make(rnn, tanh_constant=1e-12, index_distance_penalty=1 / 6, scale_index_input=True)
    tokens = ctrl.sample(1, greedy=True).tokens.repeat(2, 1)
    tokens[:, 3] = torch.tensor([0, 1])  # node 2 reads node 0 (distance 2) or node 1 (distance 1)
    lp = ctrl.log_prob(tokens).log_prob
    assert abs((lp[0] - lp[1]).item() - (-(4 - 1) / 6)) < 1e-9

    # Scaling the chosen anchor by 1 / (0.1 + distance) changes what later decisions see.
    plain, scaled = make(rnn, tanh_constant=2.5), make(rnn, tanh_constant=2.5, scale_index_input=True)
    tokens = plain.sample(8).tokens
    assert (plain.log_prob(tokens).log_prob - scaled.log_prob(tokens).log_prob).abs().min() > 0


def test_official_micro_constants_have_the_micro_op_count():
    assert len(MICRO_OP_BIAS) == len(MICRO_OP_BIAS_INIT) == 5


def test_user_errors():
    space = enas.get_space("enas_rnn", num_nodes=3)
    ctrl = make(space)
    with pytest.raises(enas.ArchError):
        ctrl.log_prob(torch.zeros(2, space.num_tokens + 1, dtype=torch.long))
    with pytest.raises(enas.ArchError):
        ctrl.log_prob([enas.get_space("enas_rnn", num_nodes=4).sample(seed=0)])
    with pytest.raises(enas.ConfigError):
        Controller(space, skip_target=1.0)
    with pytest.raises(enas.ConfigError):
        Controller(space, op_bias=MICRO_OP_BIAS)  # 5 values, enas_rnn has 4 activations
    with pytest.raises(enas.ConfigError):
        Controller(TooFewAnchorsSpace())
    with pytest.raises(enas.ConfigError):
        Controller(space, anchors="middle")
    with pytest.raises(enas.ConfigError):
        Controller(space, num_layers=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_and_log_prob_do_not_synchronise_on_cuda():
    space = AllKindsSpace()
    ctrl = Controller(space, hidden_size=32, temperature=5.0, tanh_constant=2.5).cuda()
    ctrl.sample(4)  # warm-up (lazy initialisation may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        s = ctrl.sample(64)
        again = ctrl.log_prob(s.tokens)
        (again.log_prob.sum() + s.entropy.sum()).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.allclose(again.log_prob, s.log_prob)


def test_micro_steps_as_the_official_sampler(monkeypatch):
    """Official micro_controller.py, per cell: two warm-up steps for the cell inputs, then per block
    index_1, index_2, op_1, op_2 and one step that reads op_2 and gives the block's anchor, after which
    the next block starts from g_emb. The reduction cell carries the LSTM state but restarts the anchors,
    so its first index again attends over exactly the two inputs."""
    space = enas.get_space("enas_micro", num_blocks=2)
    ctrl = make(space, hidden_size=8, anchors="own_step", tanh_constant=0.05)
    inputs, widths = [], []
    real_step, real_categorical = ctrl._step, ctrl._categorical
    monkeypatch.setattr(ctrl, "_step", lambda x, state: inputs.append(x) or real_step(x, state))
    monkeypatch.setattr(ctrl, "_categorical", lambda logits, *a: widths.append(logits.shape[1]) or
                        real_categorical(logits, *a))
    n = 64
    tokens = ctrl.sample(n, generator=torch.Generator().manual_seed(0)).tokens
    assert len(inputs) == 2 * (2 + 5 * 2)
    assert widths == [2, 2, 5, 5, 3, 3, 5, 5] * 2  # both indices, then both ops; 2 and 3 anchors in each cell
    start = ctrl.g_emb.expand(n, 8)
    # per cell: warm-up, warm-up, then block 0 at steps 2..6 and block 1 at steps 7..11
    for cell in (0, 12):
        assert all(torch.equal(inputs[cell + k], start) for k in (0, 1, 2, 7))
        # block 0 can only choose a cell input, and a cell input feeds zeros
        assert not inputs[cell + 3].any() and not inputs[cell + 4].any()
    # block 1's index_1 (token 4) may choose node 2, the anchor of block 0, which feeds its state
    fed = inputs[8].abs().sum(-1) > 0
    assert torch.equal(fed, tokens[:, 4] == 2) and 0 < fed.sum() < n

    # today's token order remains as an option; the arc format is the same either way
    widths.clear()
    ctrl.indices_first = False
    ctrl._cells = ctrl._plan()
    ctrl.sample(2)
    assert widths == [2, 5, 2, 5, 3, 5, 3, 5] * 2


def test_micro_initial_op_probabilities_are_the_official_ones():
    """Official micro_controller.py: op logits = h w_soft + b_soft with the learned b_soft initialised to
    [10, 10, 0, 0, 0]; no temperature, then (tanh_constant / op_tanh_reduce) * tanh(.); then the fixed
    [0.25, 0.25, -0.25, -0.25, -0.25] in the normal cell only."""
    c = preset("search", "cifar10", "paper", "enas_micro").section.controller
    space = enas.get_space("enas_micro", num_blocks=2)
    ctrl = make_controller(space, c, torch.device("cpu"))[0].double()
    with torch.no_grad():
        ctrl.soft["op"].weight.zero_()  # h w_soft = 0: the logits are b_soft as initialised
        ctrl.attn_v.weight.zero_()      # uniform indices: every decision's distribution is state-free
    shaped = c.tanh_constant / c.op_tanh_reduce * torch.tanh(torch.tensor(MICRO_OP_BIAS_INIT, dtype=torch.float64))
    expected = {"normal": torch.softmax(shaped + torch.tensor(MICRO_OP_BIAS, dtype=torch.float64), 0),
                "reduce": torch.softmax(shaped, 0)}
    base = ctrl.sample(1).tokens.repeat(5, 1)
    for cell in ("normal", "reduce"):
        for pos in space.positions(cell, "op1") + space.positions(cell, "op2"):
            tokens = base.clone()
            tokens[:, pos] = torch.arange(5)  # nothing else changes, so the log-probs differ by log p(op)
            p = torch.softmax(ctrl.log_prob(tokens).log_prob, 0)
            assert torch.allclose(p, expected[cell], atol=1e-12), (cell, pos)
    assert torch.allclose(expected["normal"], torch.tensor([0.3153, 0.3153, 0.1232, 0.1232, 0.1232],
                                                           dtype=torch.float64), atol=1e-4)
    assert torch.allclose(expected["reduce"], torch.tensor([0.2543, 0.2543, 0.1638, 0.1638, 0.1638],
                                                           dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("first_act", ["sampled", "tanh"])
def test_ptb_anchor_is_the_first_step_of_each_node(monkeypatch, first_act):
    """Official ptb_enas_controller.py (`all_h`): node 0 gets a step of its own fed g_emb before its
    function; every later node's anchor is the output of its first step, the one that reads the previous
    function and chooses the predecessor; node i attends over the anchors of nodes 0 .. i-1."""
    space = enas.get_space("enas_rnn", num_nodes=4, first_act=first_act)
    ctrl = make(space, anchors="before", tanh_constant=2.5)
    inputs, outputs, keys = [], [], []
    real_step = ctrl._step
    monkeypatch.setattr(ctrl, "_step", lambda x, state: inputs.append(x) or outputs.append(real_step(x, state))
                        or outputs[-1])
    ctrl.attn_key.register_forward_hook(lambda module, args, out: keys.append(args[0]))
    ctrl.sample(3)
    start = ctrl.g_emb.expand(3, 16)
    if first_act == "sampled":  # steps: node 0's own, act0, prev1, act1, prev2, act2, prev3, act3
        assert len(outputs) == 1 + space.num_tokens
        assert torch.equal(inputs[0], start) and torch.equal(inputs[1], start)
        assert [id(k) for k in keys] == [id(outputs[i]) for i in (0, 2, 4, 6)]
    else:  # node 0 (fixed tanh) is a warm-up anchor; steps: node 0, node 1's own, prev1, act1, prev2, act2, ...
        assert len(outputs) == 2 + space.num_tokens
        assert [id(k) for k in keys] == [id(outputs[i]) for i in (0, 1, 4, 6)]


def test_skip_penalty_uses_the_sigmoid_of_the_shaped_logit():
    """Official general_controller.py: `skip_prob = tf.sigmoid(logit)` with logit = [-x, x], while the bit is
    drawn from softmax([-x, x]) = sigmoid(2x)."""
    space = enas.get_space("enas_macro", num_layers=2)  # one skip bit: layer 1's, the last token
    ctrl = make(space, skip_target=0.4)
    with torch.no_grad():
        for p in ctrl.parameters():
            p.mul_(5)
    tokens = ctrl.sample(8).tokens
    off, on = tokens.clone(), tokens.clone()
    off[:, -1], on[:, -1] = 0, 1
    x = (ctrl.log_prob(on).log_prob - ctrl.log_prob(off).log_prob) / 2  # log p1 - log p0 = 2x

    def kl(q):
        return q * torch.log(q / 0.4) + (1 - q) * torch.log((1 - q) / 0.6)

    assert (kl(torch.sigmoid(x)) - kl(torch.sigmoid(2 * x))).abs().max() > 0.01  # the two differ here
    assert torch.allclose(ctrl.log_prob(off).skip_kl, kl(torch.sigmoid(x)), atol=1e-12)
