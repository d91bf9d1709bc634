"""The nas_cnn space (Zoph & Le 2017, sec. 3.3 / 4.1) and its networks: tokens, the paper's fix-ups,
supernet == child, gradients only on the chosen slices, bad input, and learning on Fashion-MNIST."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import enas
from enas.errors import ArchError, ConfigError
from enas.nn import nas_cnn as nets
from enas.spaces import Choice, Subset
from enas.spaces.nas_cnn import IMAGE

from conftest import SHARED_DATA

F64 = torch.float64
KW = dict(num_classes=5, image_size=16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny convolutions gain nothing from threads on a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(batch=4, size=16, seed=0):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=F64)


def supernet_f64(space, seed=0):
    """A float64 supernet whose BN scales and offsets differ per channel, so a wrong slice shows."""
    torch.manual_seed(seed)
    net = enas.build_supernet(space, **KW).to(F64)
    with torch.no_grad():
        for layer in net.layers:
            layer.bn.weight.uniform_(0.5, 1.5)
            layer.bn.bias.uniform_(-0.5, 0.5)
    return net


def reference_forward(child, x):
    """The network written out from the child's modules: pool everything before a pool_at layer, pad
    evenly, concatenate, conv, BN, ReLU; the classifier on the average of the padded concatenation of the
    outputs no later layer reads."""
    def pad_cat(maps):
        H, W = max(m.shape[2] for m in maps), max(m.shape[3] for m in maps)
        return torch.cat([F.pad(m, ((W - m.shape[3]) // 2, (W - m.shape[3] + 1) // 2,
                                    (H - m.shape[2]) // 2, (H - m.shape[2] + 1) // 2)) for m in maps], 1)
    def pool(m):
        return F.max_pool2d(m, 2, ceil_mode=True)
    outs = []
    for i, layer in enumerate(child.arch_layers):
        if i in child.space.pool_at:  # everything so far, 2 x 2 windows from the top left, stride 2
            x, outs = pool(x), [pool(m) for m in outs]
        srcs = [outs[j] for j in layer.inputs] or [x]
        block = child.layers[i]
        outs.append(torch.relu(block.bn(block.conv(pad_cat(srcs)))))
    read = {j for layer in child.arch_layers for j in layer.inputs}
    heads = [outs[j] for j in range(len(outs)) if j not in read]
    return child.classifier(pad_cat(heads).mean((2, 3)))


# --------------------------------------------------------------------------------------------------
# the space
# --------------------------------------------------------------------------------------------------
def test_tokens_per_layer_are_input_bits_then_filter_height_width_stride_height_width_count():
    # Zoph & Le 2017, Figures 2 and 4: the anchor point first, then fh, fw, sh, sw, filters
    space = enas.get_space("nas_cnn", num_layers=3, predict_stride=True)
    kinds = [(type(d), d.num_options) for d in space.decisions]
    assert kinds[:5] == [(Choice, 4), (Choice, 4), (Choice, 3), (Choice, 3), (Choice, 4)]  # layer 0: no bits
    assert kinds[5:11] == [(Subset, 1), (Choice, 4), (Choice, 4), (Choice, 3), (Choice, 3), (Choice, 4)]
    assert [d.name for d in space.decisions[5:11]] == [
        "layer1.inputs", "layer1.filter_height", "layer1.filter_width", "layer1.stride_height",
        "layer1.stride_width", "layer1.filters"]
    assert space.num_tokens == 3 * 5 + 0 + 1 + 2
    assert [d.anchor for d in space.decisions[:6]] == [False, False, False, False, True, False]
    arch = enas.Arch.parse(space, "3 0 2 2 1  1 0 1 0 0 3  0 1 1 1 1 1 0")
    layers = space.layers(arch.tokens)
    assert layers[0] == (7, 1, 36, 3, 3, ())
    assert layers[1] == (1, 3, 64, 1, 1, (0,))
    assert layers[2] == (3, 3, 24, 2, 2, (1,))
    assert layers[2].sources == (1,) and layers[0].sources == (IMAGE,)
    assert space.classifier_inputs(layers) == [2]
    plain = enas.get_space("nas_cnn")  # NAS v1: strides fixed to 1, no stride token
    assert plain.num_layers == 6 and plain.num_tokens == 6 * 3 + 15
    assert all(layer.stride == (1, 1) for layer in plain.layers(plain.sample(seed=0).tokens))
    for s in (space, plain):
        a = s.sample(seed=3)
        assert enas.Arch.parse(s, str(a)) == a
    # pooling takes no token: an arc string cannot tell it (arch.json records it with the space)
    assert plain.infer_options(plain.num_tokens) == {"num_layers": 6, "predict_stride": False}
    assert space.infer_options(11) == {"num_layers": 2, "predict_stride": True}
    # 18 numbers are 3 strided layers or 4 plain ones: a count both fit reads as the default
    assert space.num_tokens == 18 and space.infer_options(18) == {"num_layers": 4, "predict_stride": False}


def test_options_and_token_ranges_are_checked():
    with pytest.raises(ArchError, match="num_layers"):
        enas.get_space("nas_cnn", num_layers=0)
    with pytest.raises(ArchError, match="num_layers"):
        enas.get_space("nas_cnn", num_layers=1000)
    with pytest.raises(ArchError, match="predict_stride"):
        enas.get_space("nas_cnn", predict_stride="yes")
    for pools in [(0,), (6,), (3, 2), (2, 2), "2", (2.0,)]:  # layers 1..5 of 6, increasing, as a tuple
        with pytest.raises(ArchError, match="pool_at must list layers 1..5 in increasing order"):
            enas.get_space("nas_cnn", pool_at=pools)
    assert enas.get_space("nas_cnn", pool_at=[2, 4]) == enas.get_space("nas_cnn", pool_at=(2, 4))  # from JSON
    space = enas.get_space("nas_cnn", num_layers=2, predict_stride=True)
    with pytest.raises(ArchError, match="layer0.filter_height"):
        enas.Arch.parse(space, "4 0 0 0 0  1 0 0 0 0 0")
    with pytest.raises(ArchError, match="layer1.stride_height"):
        enas.Arch.parse(space, "0 0 0 0 0  1 0 0 3 3 0")
    with pytest.raises(ArchError, match="layer1.inputs"):
        enas.Arch.parse(space, "0 0 0 0 0  2 0 0 0 0 0")


def test_a_run_with_pooling_is_its_checkpoints_run():
    """The checkpoint keeps pool_at as the tuple the space holds, config.json as a JSON list: the same."""
    from enas.restore import _differences
    saved = {"space_options": {"num_layers": 6, "pool_at": (1, 3)}}
    assert _differences(saved, {"space_options": {"num_layers": 6, "pool_at": [1, 3]}}, ("space_options",)) == []
    assert _differences(saved, {"space_options": {"num_layers": 6, "pool_at": [1]}},
                        ("space_options",)) == ["space_options.pool_at"]


def test_text_and_figure_describe_every_layer_and_the_classifier():
    space = enas.get_space("nas_cnn", num_layers=3, predict_stride=True)
    tokens = enas.Arch.parse(space, "3 0 2 2 1  0 0 1 0 0 3  0 1 1 1 1 1 0").tokens
    text = space.text(tokens)
    assert "layer 0 = conv 7x1, 36 filters, stride 3  <- image" in text
    assert "layer 1 = conv 1x3, 64 filters, stride 1  <- image" in text
    assert "layer 2 = conv 3x3, 24 filters, stride 2  <- layer 1" in text
    assert "concat(layer 0, layer 2)" in text
    fig = space.figure(tokens)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "layer 1\n1x3, 64" in labels and "layer 0\n7x1, 36\nstride 3" in labels
    assert len(fig.axes[0].patches) + len(fig.axes[0].texts) > 5  # arrows drawn as annotations


def test_the_full_nas_controller_is_the_papers_policy():
    """Under --strategy nas the log-probability of an architecture is, written out from the controller's
    own modules: per layer the anchor point's step first, whose state h_i decides the input bits, each
    with P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)) over the earlier anchor points' states
    h_j (Zoph & Le 2017, sec. 3.3), then softmax choices on the raw logits (no ENAS shaping)."""
    from enas.controller import make_controller
    from enas.presets import preset

    cfg = preset("search", "fashion_mnist", "tiny", "nas_cnn", strategy="nas")
    space = enas.get_space("nas_cnn", **cfg.space_options)
    torch.manual_seed(0)
    controller, _ = make_controller(space, cfg.section.controller, torch.device("cpu"))
    controller.double()
    with torch.no_grad():
        for p in controller.parameters():  # weights large enough that shaping would change the logits
            p.uniform_(-1.0, 1.0)
    arch = space.sample(seed=5)
    states = controller.hidden_states([arch])[0]  # [D + 1, H], one per decision in the controller's order
    assert controller.decision_order == tuple(range(len(space.decisions)))  # the space's order is the paper's
    # layer 0's anchor point: the step of its own, fed the start input from the zero state
    x, state = controller.g_emb, [None] * len(controller.lstm)
    for k, cell in enumerate(controller.lstm):
        state[k] = cell(x)
        x = state[k][0]
    anchor_states, expected = [x[0]], torch.zeros((), dtype=F64)
    for t, d in enumerate(space.decisions):
        h, pos = states[t], space.offsets[t]
        if isinstance(d, Subset):
            anchor_states.append(h)  # this step is layer i's anchor point
            i = d.num_options
            for j in range(i):
                score = controller.attn_v(torch.tanh(controller.attn_key(anchor_states[j])
                                                     + controller.attn_query(h)))
                p = torch.sigmoid(score)[0]
                expected = expected + torch.log(p if arch.tokens[pos + j] else 1 - p)
        else:
            expected = expected + F.log_softmax(controller.soft[d.group](h), -1)[arch.tokens[pos]]
    got = controller.log_prob([arch]).log_prob[0]
    assert torch.allclose(got, expected, atol=1e-10), (got, expected)


# --------------------------------------------------------------------------------------------------
# supernet and child
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strided, pools", [(False, ()), (True, ()), (False, (1, 3)), (True, (2,))])
def test_supernet_equals_child_after_inheritance(strided, pools):
    space = enas.get_space("nas_cnn", num_layers=4, predict_stride=strided, pool_at=pools)
    net = supernet_f64(space)
    x = images(seed=1)
    for seed in range(4):
        arch = space.sample(seed=seed)
        child = enas.build_child(space, arch, **KW).to(F64)
        enas.inherit_weights(child, net, arch)
        net.eval(), child.eval()
        with torch.no_grad():
            expect = net(x, arch)
            assert torch.allclose(child(x), expect, rtol=0, atol=1e-10)
            assert torch.allclose(net(x, arch.tensor()), expect, rtol=0, atol=1e-10)  # a LongTensor arch
            assert torch.allclose(reference_forward(child, x), expect, rtol=0, atol=1e-10)
        # in training mode too: both normalise with the batch's statistics and keep none
        net.train(), child.train()
        with torch.no_grad():
            assert torch.allclose(child(x), net(x, arch), rtol=0, atol=1e-10)
        assert not any("running" in name for name in child.state_dict())


def test_child_holds_only_its_weights_and_final_style_keeps_running_statistics():
    space = enas.get_space("nas_cnn", num_layers=3, predict_stride=True)
    arch = enas.Arch.parse(space, "1 2 0 0 3  1 0 0 1 1 0  1 1 3 3 0 0 1")  # layer 2 reads layers 0 and 1
    child = enas.build_child(space, arch, **KW)
    assert child.layers[0].conv.weight.shape == (64, 3, 3, 5)
    assert child.layers[1].conv.weight.shape == (24, 64, 1, 1) and child.layers[1].conv.stride == (2, 2)
    assert child.layers[2].conv.weight.shape == (36, 64 + 24, 7, 7)
    assert child.classifier.weight.shape == (5, 36)
    net = supernet_f64(space).eval()
    # the same layers; with batch statistics a final-style child computes the supernet's function
    same = enas.build_child(space, arch, style="final", bn_batch_stats=True, **KW).to(F64)
    enas.inherit_weights(same, net, arch)
    same.eval()
    x = images(seed=2)
    with torch.no_grad():
        assert torch.allclose(same(x), net(x, arch), rtol=0, atol=1e-10)
    # by default a final child keeps running statistics, which the supernet has not: it trains from scratch
    final = enas.build_child(space, arch, style="final", **KW)
    assert final.layers[0].bn.running_mean.shape == (64,)
    with pytest.raises(ConfigError, match="from scratch"):
        enas.inherit_weights(final, net, arch)
    with pytest.raises(ConfigError, match="batch statistics"):
        enas.build_supernet(space, bn_batch_stats=False, **KW)


def test_only_the_chosen_slices_get_gradient():
    space = enas.get_space("nas_cnn", num_layers=4, predict_stride=True)
    torch.manual_seed(0)
    net = enas.build_supernet(space, **KW).to(F64).train()
    for seed in range(3):
        arch = space.sample(seed=seed)
        child = enas.build_child(space, arch, **KW)
        masks = enas.nn.used_mask(net, enas.nn.param_map(child, net))
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(images(seed=seed), arch), torch.arange(4) % 5).backward()
        used = 0
        for name, p in net.named_parameters():
            mask = masks[name]
            if not mask.any():
                assert p.grad is None, f"{name} is not in the architecture but got a gradient"
                continue
            used += 1
            assert p.grad is not None, name
            assert (p.grad[~mask] == 0).all(), f"{name}: gradient outside the chosen slice"
            assert (p.grad[mask] != 0).float().mean() > 0.95, f"{name}: the chosen slice got no gradient"
        assert used == 3 * 4 + 2  # per layer its kernel, BN weight and bias; classifier w, b


def test_a_layer_without_inputs_reads_the_image():
    space = enas.get_space("nas_cnn", num_layers=3)
    arch = enas.Arch.parse(space, "1 1 0  0 0 0 1  1 1 1 1 2")  # layer 1: no input bit set
    child = enas.build_child(space, arch, **KW).to(F64).eval()
    assert child.arch_layers[1].sources == (IMAGE,)
    assert child.layers[1].conv.weight.shape[1] == 3
    x = images(seed=3)
    outputs = []
    child.layers[1].register_forward_hook(lambda m, inp, out: outputs.append(inp[0]))
    with torch.no_grad():
        child(x)
    assert torch.equal(outputs[0], x)
    net = enas.build_supernet(space, **KW)
    slices = enas.nn.param_map(child, net)
    (conv1,) = [s for s in slices if s.child == "layers.1.conv.weight"]
    # the image's channels of layer 1's weight, the centre of the shared 7 x 7 kernel for its 1 x 1 filter
    assert conv1.index == (slice(0, 36), slice(0, 3), slice(3, 4), slice(3, 4))


def test_outputs_no_later_layer_reads_go_to_the_classifier():
    space = enas.get_space("nas_cnn", num_layers=4)
    # layer 1 reads nothing (the image); layer 2 reads layer 1; layer 3 reads layer 2: layer 0 is unread
    arch = enas.Arch.parse(space, "0 0 0  0 1 1 1  0 1 1 1 2  0 0 1 1 1 3")
    child = enas.build_child(space, arch, **KW).to(F64).eval()
    assert space.classifier_inputs(child.arch_layers) == [0, 3]
    assert child.classifier.in_features == 24 + 64
    net = enas.build_supernet(space, **KW)
    blocks = [s for s in enas.nn.param_map(child, net) if s.child == "classifier.weight"]
    assert [b.index[1] for b in blocks] == [slice(0, 24), slice(3 * 64, 3 * 64 + 64)]
    assert [b.child_index[1] for b in blocks] == [slice(0, 24), slice(24, 88)]
    with torch.no_grad():
        x = images(seed=4)
        assert torch.allclose(child(x), reference_forward(child, x), rtol=0, atol=1e-12)


def test_inputs_of_different_sizes_are_zero_padded_evenly():
    small = torch.ones(1, 1, 2, 3)
    big = torch.full((1, 2, 5, 5), 2.0)
    out = nets.concat_padded([small, big])
    assert out.shape == (1, 3, 5, 5)
    expect = torch.zeros(5, 5)
    expect[1:3, 1:4] = 1.0  # 3 rows of padding: 1 before, 2 after; 2 columns: 1 and 1
    assert torch.equal(out[0, 0], expect) and torch.equal(out[0, 1:], big[0])
    space = enas.get_space("nas_cnn", num_layers=3, predict_stride=True)
    # layer 0 stride 1 (16x16), layer 1 stride 3 from layer 0 (6x6), layer 2 reads both: 6x6 padded to 16
    arch = enas.Arch.parse(space, "1 1 0 0 0  1 1 1 2 2 0  1 1 0 0 0 0 0")
    assert nets.plan(space.layers(arch.tokens), 3, 16, 16) == [(16, 16), (6, 6), (16, 16)]
    assert nets.plan(space.layers(arch.tokens), 3, 28, 28)[1] == (10, 10)  # ceil(28 / 3)
    net = supernet_f64(space).eval()
    child = enas.build_child(space, arch, **KW).to(F64)
    enas.inherit_weights(child, net, arch)
    child.eval()
    with torch.no_grad():
        x = images(seed=5)
        assert torch.allclose(child(x), reference_forward(child, x), rtol=0, atol=1e-12)
        assert torch.allclose(child(x), net(x, arch), rtol=0, atol=1e-10)


def test_pooling_halves_the_image_and_every_earlier_output_before_its_layers():
    space = enas.get_space("nas_cnn", num_layers=3, pool_at=(1, 2))
    arch = enas.Arch.parse(space, "1 1 0  1 1 1 0  1 1 1 1 0")  # layer 2 reads layer 0, layer 1
    # 15x15: layer 0 at 15, pooled to 8 before layer 1 and to 4 before layer 2, where layer 1 is 4 too
    assert nets.plan(space.layers(arch.tokens), 3, 15, 15, space.pool_at) == [(4, 4), (4, 4), (4, 4)]
    assert nets.plan(space.layers(arch.tokens), 3, 15, 15) == [(15, 15)] * 3
    child = enas.build_child(space, arch, num_classes=5, image_size=15).to(F64).eval()
    x = images(size=15, seed=6)
    with torch.no_grad():
        assert torch.allclose(child(x), reference_forward(child, x), rtol=0, atol=1e-12)
        seen = []
        hook = child.layers[2].conv.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
        child(x)
        hook.remove()
    assert seen == [(4, 48, 4, 4)]  # layer 0 and layer 1 (24 filters each) at 4 x 4
    text = space.text(arch.tokens)
    assert text.count("max pool 2x2, stride 2") == 2
    assert text.index("max pool") < text.index("layer 1 =") < text.rindex("max pool") < text.index("layer 2 =")
    labels = [t.get_text() for t in space.figure(arch.tokens).axes[0].texts]
    assert "layer 2\n3x3, 24\nafter max pool" in labels


def test_an_architecture_too_large_for_the_images_is_refused_naming_the_layer():
    space = enas.get_space("nas_cnn", num_layers=4)
    wide = enas.Arch.parse(space, "0 0 3  1 0 0 3  0 1 0 0 3  1 1 1 0 0 3")  # layer 3 reads 3 x 64 channels
    enas.build_child(space, wide, image_size=32)  # fits at 32 x 32
    with pytest.raises(ArchError, match=r"layer 3 concatenates 192 channels of 256x256"):
        enas.build_child(space, wide, image_size=256)
    net = enas.build_supernet(space)
    with pytest.raises(ArchError, match=r"layer 3 concatenates 192 channels"):
        net(torch.zeros(1, 3, 256, 256), wide)
    with pytest.raises(ArchError, match="shape"):
        net(torch.zeros(1, 3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ConfigError, match="auxiliary head"):
        enas.build_supernet(space, aux_head=True)
    with pytest.raises(ConfigError, match="num_layers"):
        enas.build_child(space, wide, num_layers=5)
    with pytest.raises(ConfigError, match="images must be"):
        net(torch.zeros(1, 1, 8, 8), wide)


def test_presets_are_configs_of_this_space():
    from enas.config import SearchConfig, TrainConfig, validate

    space = enas.get_space("nas_cnn")
    for (kind, name), make in space.presets.items():
        cfg = make("fashion_mnist")
        assert isinstance(cfg, SearchConfig if kind == "search" else TrainConfig)
        validate(cfg)
        if kind == "search":
            assert cfg.space == "nas_cnn" and cfg.controller.anchors == "before"
            enas.get_space("nas_cnn", **cfg.space_options)
    paper = space.presets[("search", "paper")]("cifar10")
    assert (paper.child_epochs, paper.shared.lr, paper.shared.weight_decay, paper.num_valid) == (50, 0.1, 1e-4, 5000)


def test_the_paper_preset_grows_depth_as_the_paper_says():
    """Zoph & Le 2017, sec. 4.1: 6 layers at first, 2 more every 1,600 sampled children (m = 8 per
    update: every 200 updates), up to the space's 15 layers."""
    from enas.presets import preset
    from enas.strategies.nas import scheduled_depth

    cfg = preset("search", "cifar10", "paper", "nas_cnn", strategy="nas")
    n = cfg.nas
    assert (n.grow_from, n.grow_by, n.grow_every, n.controller.num_aggregate) == (6, 2, 1600, 8)
    depths = {batch: scheduled_depth(n, batch, 15) for batch in (0, 199, 200, 399, 400, 600, 800, 999, 1000, 1599)}
    assert depths == {0: 6, 199: 6, 200: 8, 399: 8, 400: 10, 600: 12, 800: 14, 999: 14, 1000: 15, 1599: 15}
    assert preset("search", "cifar10", "small", "nas_cnn", strategy="nas").nas.grow_from == 0


@pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist").is_dir(), reason="needs Fashion-MNIST")
def test_a_growing_full_nas_search_trains_each_depth_when_scheduled_and_resumes(tmp_path):
    """A tiny schedule (1 layer, 1 more every 2 children, m = 2): updates 0, 1, 2, 3 train children of
    1, 2, 3 and 3 layers; the controller's log-probability is taken on each batch's own depth, and a
    search stopped mid-way resumes to the same children."""
    import json

    from enas.config import apply_overrides
    from enas.presets import preset
    from enas.strategies import resume_search, start_search

    cfg = apply_overrides(preset("search", "fashion_mnist", "tiny", "nas_cnn", strategy="nas"), [
        f"data_dir={SHARED_DATA / 'fashion-mnist'}", "nas.updates=4", "controller.num_aggregate=2",
        "child_max_steps=2", "eval_max_batches=1", "nas.grow_from=1", "nas.grow_by=1", "nas.grow_every=2"])
    space = enas.get_space("nas_cnn", **cfg.space_options)
    assert space.num_layers == 3
    runs = {}
    for name, stop in (("straight", None), ("resumed", 3)):
        search = start_search(cfg, str(tmp_path / name), progress=False)
        if stop:
            assert not search.run(max_units=stop)  # stopped inside update 1
            search = resume_search(tmp_path / name, progress=False)
        assert search.run()
        rows = [json.loads(x) for x in (tmp_path / name / "archs.jsonl").read_text().splitlines()]
        runs[name] = [r["arch"] for r in rows]
        depths = [{5: 1, 11: 2, 18: 3}[len(r["arch"].split())] for r in rows]  # 5 numbers a strided layer
        assert depths == [1, 1, 2, 2, 3, 3, 3, 3], rows
        assert all(r.get("error") is None for r in rows)
    assert runs["straight"] == runs["resumed"]
    with pytest.raises(enas.ConfigError, match="grow_from=4 is more than the space's num_layers=3"):
        start_search(apply_overrides(cfg, ["nas.grow_from=4"]), str(tmp_path / "bad"), progress=False)


# --------------------------------------------------------------------------------------------------
# learning on the real data
# --------------------------------------------------------------------------------------------------
def test_shared_loss_falls_on_fashion_mnist():
    """300 shared steps (9,600 images, a fifth of an epoch) on uniformly drawn 3-layer architectures.
    Every layer has 16 filter-size weights, so each is trained in one step of 16 on average and the
    loss starts to fall late: measured 2.32 over the first 50 steps, 2.22 over the last 50."""
    from enas.tasks.image_task import ImageTask

    task = ImageTask("fashion_mnist", str(SHARED_DATA / "fashion-mnist"), torch.device("cpu"), batch_size=32,
                     eval_batch_size=64, num_valid=500, seed=0)
    space = enas.get_space("nas_cnn", num_layers=3, predict_stride=True)
    torch.manual_seed(0)
    net = enas.build_supernet(space, **task.model_kwargs(enas.config.ModelConfig())).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    losses = []
    for step in range(300):
        loss, _, _ = task.train_loss(net, space.sample(seed=step).tensor())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    first, last = torch.stack(losses[:50]).mean().item(), torch.stack(losses[-50:]).mean().item()
    assert first > 2.2 and last < first - 0.05, f"shared loss {first:.2f} -> {last:.2f}"
