"""The nas_rnn space and its tree-cell LM: the LSTM and NASCell as published, decisions, bad input,
supernet == child, and learning on the real PTB files."""
import json
import math
import random
from pathlib import Path

import pytest
import torch

import enas
from enas import Arch, ArchError, zoo
from enas.nn.tree_cell import lstm_leaf_weights, tree_cell_forward

V, H, T, B = 23, 5, 6, 3
PTB = Path("/work/shared/data/ptb")
DROP = dict(dropout_e=0.2, dropout_x=0.3, dropout_h=0.25, dropout_o=0.3)


def _rand(*shape, seed):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_lstm_cell_equals_torch_lstm():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(H, H).double()
    arch = zoo.get("lstm")
    w_x, w_h, bias = lstm_leaf_weights(lstm)
    x, h0, c0 = _rand(T, B, H, seed=1), _rand(B, H, seed=2), _rand(B, H, seed=3)
    out, state = tree_cell_forward(x @ w_x, torch.cat([h0, c0], 1), w_h, bias, arch.space.cell(arch.tokens))
    ref, (hT, cT) = lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
    assert torch.allclose(out, ref, atol=1e-10, rtol=0)
    assert torch.allclose(state, torch.cat([hT[0], cT[0]], 1), atol=1e-10, rtol=0)


def _nascell_reference(x, h, c, w_x, w_h, b):
    """tf.contrib.rnn.NASCell.call, written out: one step, returns (new_h, new_c). b is None for
    `use_biases=False` (TF's default); with biases, b goes on the recurrent branch (`m_matrix`)."""
    m = (h @ w_h if b is None else h @ w_h + b).chunk(8, dim=1)
    i = (x @ w_x).chunk(8, dim=1)
    sig, tanh, relu = torch.sigmoid, torch.tanh, torch.relu
    l1 = [sig(i[0] + m[0]), relu(i[1] + m[1]), sig(i[2] + m[2]), relu(i[3] * m[3]),
          tanh(i[4] + m[4]), sig(i[5] + m[5]), tanh(i[6] + m[6]), sig(i[7] + m[7])]
    l2_0, l2_1 = tanh(l1[0] * l1[1]), tanh(l1[2] + l1[3])
    l2_2, l2_3 = tanh(l1[4] * l1[5]), sig(l1[6] + l1[7])
    l2_0 = tanh(l2_0 + c)
    new_c = l2_0 * l2_1
    return tanh(new_c * tanh(l2_2 + l2_3)), new_c


@pytest.mark.parametrize("leaf_bias", [False, True])
def test_nascell_equals_its_published_equations(leaf_bias):
    """The zoo cell through the LM's own cell step (no hidden-norm clip), without and with a leaf bias."""
    arch = zoo.get("nascell")
    assert arch.space.leaf_bias is False  # NASCell's default, use_biases=False
    space = enas.get_space("nas_rnn", base=8, leaf_bias=leaf_bias)
    arch = Arch(space, arch.tokens)
    child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, max_hidden_norm=None).double()
    assert (child.bias is not None) == leaf_bias
    with torch.no_grad():
        for i, p in enumerate(child.parameters()):
            p.copy_(_rand(*p.shape, seed=4 + i))
    x, h, c = _rand(T, B, H, seed=7), _rand(B, H, seed=8), _rand(B, H, seed=9)
    out, state = child._recur(x, torch.cat([h, c], 1), arch, None)  # x: the embedded input
    for t in range(T):
        h, c = _nascell_reference(x[t], h, c, child.w_x, child.w_h, child.bias)
        assert torch.allclose(out[t], h, atol=1e-10, rtol=0)
    assert torch.allclose(state, torch.cat([h, c], 1), atol=1e-10, rtol=0)


def _ptb_lm_batches(n, batch_size=4, bptt=8):
    from enas.tasks.ptb import batchify, get_batch, load_ptb

    corpus = load_ptb(PTB, download=False)
    data = batchify(corpus.train[:batch_size * bptt * (n + 1)], batch_size)
    return corpus.vocab_size, [get_batch(data, i * bptt, bptt) for i in range(n)]


class _TorchLSTMLM(torch.nn.Module):
    """The tree LM's body (tied embedding and decoder, decoder bias) around a torch.nn.LSTM."""

    def __init__(self, child):
        super().__init__()
        self.embedding = torch.nn.Embedding.from_pretrained(child.embedding.weight.detach().clone(), freeze=False)
        self.decoder_bias = torch.nn.Parameter(child.decoder_bias.detach().clone())
        self.lstm = torch.nn.LSTM(child.hidden_size, child.hidden_size).double()

    def forward(self, tokens, state):
        out, (h, c) = self.lstm(self.embedding(tokens), state)
        return torch.nn.functional.linear(out, self.embedding.weight, self.decoder_bias), (h.detach(), c.detach())


@pytest.mark.skipif(not (PTB / "ptb.train.txt").is_file(), reason="needs the PTB files")
def test_lstm_child_trains_as_torch_lstm():
    """The zoo `lstm` trained from scratch stays an LSTM: 20 SGD steps side by side with torch.nn.LSTM
    on PTB, float64, no dropout and no clip. torch has two biases per gate where the tree has one, so
    its b_ih is held at zero (two trained biases would move their sum twice as far per step)."""
    vocab, batches = _ptb_lm_batches(20)
    arch = zoo.get("lstm")
    torch.manual_seed(0)
    child = enas.build_child(arch.space, arch, vocab_size=vocab, hidden_size=H, max_hidden_norm=None,
                             init_range=0.3).double()
    ref = _TorchLSTMLM(child)
    with torch.no_grad():
        ref.lstm.bias_ih_l0.zero_()
        ref.lstm.bias_hh_l0.uniform_(-0.3, 0.3)
        w_x, w_h, bias = lstm_leaf_weights(ref.lstm)
        child.w_x.copy_(w_x), child.w_h.copy_(w_h), child.bias.copy_(bias)
    ref.lstm.bias_ih_l0.requires_grad_(False)
    opts = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1.0) for m in (child, ref)]
    state_c, state_r = None, (torch.zeros(1, 4, H, dtype=torch.float64),) * 2
    curve = []
    for x, y in batches:
        logits_c, state_c = child(x, state_c)
        logits_r, state_r = ref(x, state_r)
        state_c = state_c.detach()
        losses = [torch.nn.functional.cross_entropy(lg.reshape(-1, vocab), y.reshape(-1))
                  for lg in (logits_c, logits_r)]
        assert abs(losses[0].item() - losses[1].item()) < 1e-8
        curve.append(losses[1].item())
        for opt, loss in zip(opts, losses):
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert curve[-1] < curve[0] - 0.3, f"the pair learned: {curve}"
    w_x, w_h, bias = lstm_leaf_weights(ref.lstm)
    for ours, theirs in ((child.w_x, w_x), (child.w_h, w_h), (child.bias, bias)):
        assert torch.allclose(ours, theirs, atol=1e-8, rtol=0)  # the zero leaves included: still 0
    assert torch.allclose(child.embedding.weight, ref.embedding.weight, atol=1e-8, rtol=0)


@pytest.mark.parametrize("base,nodes", [(2, 3), (4, 7), (8, 15)])
def test_decision_counts_and_order(base, nodes):
    space = enas.get_space("nas_rnn", base=base)
    assert space.num_tokens == 2 * nodes + 4 == 4 * base + 2
    names = [d.name for d in space.decisions]
    assert names[:2] == ["node0.combine", "node0.act"]
    assert names[-4:] == ["inject.combine", "inject.act", "cell.c_node", "cell.inject_node"]
    assert space.decisions[-1].num_options == nodes
    assert space.size() == 8 ** (nodes + 1) * nodes * nodes
    cell = space.cell(space.sample(seed=0).tokens)
    assert cell.num_nodes == nodes and cell.children[nodes - 1] == (nodes - 3, nodes - 2)
    assert all(ch is None for ch in cell.children[:base])
    # every node but the root is read by exactly one parent
    reads = sorted(k for ch in cell.children if ch for k in ch)
    assert reads == list(range(nodes - 1))
    assert enas.get_space("nas_rnn").base == 8


def test_bad_input_raises_arch_error():
    with pytest.raises(ArchError, match="base must be 2, 4 or 8"):
        enas.get_space("nas_rnn", base=3)
    with pytest.raises(ArchError, match="leaf_bias must be true or false"):
        enas.get_space("nas_rnn", leaf_bias=1)
    for bad in ((8,), (1, 1), ("3",)):
        with pytest.raises(ArchError, match="zero_leaves must be distinct leaves 0..7"):
            enas.get_space("nas_rnn", zero_leaves=bad)
    lstm = zoo.get("lstm")  # options read back from JSON (a list) give the same, hashable space
    assert Arch.from_json(json.loads(json.dumps(lstm.to_json()))) == lstm and hash(lstm)
    space = enas.get_space("nas_rnn", base=2)
    good = list(space.sample(seed=0).tokens)
    for pos, value in ((0, 2), (1, 4), (len(good) - 1, 3), (len(good) - 2, 3)):  # combination 2,
        bad = list(good)                                                       # activation 4, index
        bad[pos] = value                                                       # beyond 3 nodes
        with pytest.raises(ArchError, match=f"position {pos}"):
            Arch.parse(space, " ".join(map(str, bad)))
    # a bare arc of 4 * 3 + 2 = 14 numbers asks for base 3
    with pytest.raises(ArchError, match="base must be 2, 4 or 8"):
        enas.get_space("nas_rnn", **space.infer_options(14))
    assert space.infer_options(18) == {"base": 4}
    with pytest.raises(ArchError):
        enas.build_supernet(space, vocab_size=V, hidden_size=H)(torch.zeros(T, B, dtype=torch.long), None,
                                                                torch.tensor([0, 4] + good[2:]))


@pytest.mark.parametrize("options", [dict(base=2), dict(base=4, leaf_bias=True), dict(base=8),
                                     dict(zoo.get("lstm").space.options)])
def test_supernet_equals_child_with_inherited_weights(options):
    space = enas.get_space("nas_rnn", **options)
    torch.manual_seed(0)
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H, init_range=0.5, max_hidden_norm=1.5,
                              **DROP).double()
    if space.leaf_bias:
        torch.nn.init.uniform_(sup.bias, -0.5, 0.5)  # a non-zero bias, so a wrong mapping would show
    tok = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(1))
    state = _rand(B, 2 * H, seed=2)
    rng = random.Random(space.base)
    archs = [space.sample(rng=rng) for _ in range(3)]
    archs += [zoo.get(name) for name in ("lstm", "nascell") if zoo.get(name).space == space]
    for arch in archs:
        child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, max_hidden_norm=1.5, **DROP).double()
        enas.inherit_weights(child, sup, arch)
        for train in (False, True):
            sup.train(train), child.train(train)
            torch.manual_seed(3)
            ls, hs = sup(tok, state, arch.tensor())
            torch.manual_seed(3)
            lc, hc = child(tok, state)
            assert torch.allclose(ls, lc, atol=1e-10, rtol=0) and torch.allclose(hs, hc, atol=1e-10, rtol=0)
        assert hs.shape == (B, 2 * H) and ls.shape == (T, B, V)
    assert sup.init_hidden(B).shape == (B, 2 * H) and not sup.init_hidden(B).any()
    assert {k for k, _ in child.named_parameters()} == {k for k, _ in sup.named_parameters()}


def test_every_choice_changes_the_output():
    space = enas.get_space("nas_rnn", base=2)
    torch.manual_seed(0)
    sup = enas.build_supernet(space, vocab_size=V, hidden_size=H, init_range=0.5).double().eval()
    tok = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(1))
    # leaves add-tanh and add-sigmoid, root mult-tanh; c_{t-1} added into node 0; c_t from the root
    base_arch = [0, 1, 0, 2, 1, 1, 0, 1, 2, 0]
    for pos, d in enumerate(space.decisions):
        outs = []
        for v in range(d.num_options):
            tokens = list(base_arch)
            tokens[pos] = v
            outs.append(sup(tok, None, Arch(space, tuple(tokens)))[0])
        for i in range(len(outs)):
            for j in range(i + 1, len(outs)):
                assert not torch.allclose(outs[i], outs[j], atol=1e-8), (d.name, i, j)


def test_text_and_figure_mark_the_memory():
    arch = zoo.get("nascell")
    text = arch.space.text(arch.tokens)
    assert len(text.splitlines()) == 16
    assert "inject: a8 = tanh(a8 + c_prev)" in text and "node 12" in text and "h_t = a14" in text
    fig = arch.space.figure(arch.tokens)
    boxes = {t.get_text().split(":")[0]: t.get_text() for ax in fig.axes for t in ax.texts}
    cell = arch.space.cell(arch.tokens)
    assert "c_t out" in boxes[str(cell.c_node)] and "c_t-1 in: add, tanh" in boxes[str(cell.inject_node)]
    assert sum("c_t" in text for text in boxes.values()) == 2, "the memory marked on the nodes it names only"
    assert "14: elem_mult" in boxes["14"]
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert legend == ["identity", "tanh", "sigmoid", "relu", "memory: c_t-1 in, c_t out", "feeds"]


@pytest.mark.skipif(not (PTB / "ptb.train.txt").is_file(), reason="needs the PTB files")
def test_shared_loss_falls_below_uniform_on_ptb(tmp_path):
    from enas.config import apply_overrides
    from enas.strategies import preset, start_search

    cfg = preset("search", "ptb", "tiny", "nas_rnn")
    cfg = apply_overrides(cfg, [f"data_dir={PTB}", "log_every=10", "shared_steps=30", "epochs=1",
                                "controller.steps=0", "seed=0"])
    search = start_search(cfg, str(tmp_path / "run"), progress=False)
    search.run(max_units=30)
    losses = [loss for _, loss in search.engine.shared_losses]
    assert len(losses) == 3 and losses[-1] < math.log(10000), losses


def test_clipped_state_stays_finite_with_zero_rows():
    # the root receives c_{t-1} by elem_mult, so h_0 = 0 from the zero state; c_t is the root's
    # pre-activation: clipping must give a zero row gradient 0, and the growing state a bound
    space = enas.get_space("nas_rnn", base=4)
    arch = Arch.parse(space, "1 0 0 3 0 2 0 3 1 0 0 3 1 2 1 0 6 6")
    torch.manual_seed(0)
    child = enas.build_child(space, arch, vocab_size=V, hidden_size=H, max_hidden_norm=0.5, init_range=1.0)
    logits, state = child(torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(1)))
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in child.parameters())
    assert state.view(B, 2, H).norm(dim=2).max() <= 0.5 + 1e-6


def test_the_state_clip_scale_is_a_constant_to_the_backward():
    """As in the ENAS cell: a clipped row's gradient keeps its radial part, 2 * scale^2 * v for the
    squared norm (the exact gradient of the clipped row's squared norm would be 0)."""
    from enas.nn.tree_cell import _clip_rows

    v = (10 * torch.randn(4, 6, dtype=torch.float64)).requires_grad_()
    clipped = _clip_rows(v, 1.0)
    assert torch.allclose(clipped.norm(dim=1), torch.ones(4, dtype=torch.float64))
    (clipped ** 2).sum().backward()
    scale = 1.0 / v.detach().norm(dim=1, keepdim=True)
    assert torch.allclose(v.grad, 2 * scale ** 2 * v.detach(), atol=1e-14)
