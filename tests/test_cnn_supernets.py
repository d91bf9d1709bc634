"""The image spaces and their networks: enas_macro / enas_micro, supernets, children, ops."""
from __future__ import annotations

import pytest
import torch

import enas
from enas.errors import ArchError, ConfigError
from enas.nn import macro, micro
from enas.spaces import Predecessor, Subset
from enas.spaces.enas_macro import MACRO_OPS
from enas.spaces.enas_micro import MICRO_OPS

# Tiny sizes: macro 7 layers (pools after layers 1 and 3), micro 3 blocks and 1 cell per stage.
SPACES = {
    "enas_macro": (enas.get_space("enas_macro", num_layers=7), dict(channels=4, num_classes=5)),
    "enas_micro": (enas.get_space("enas_micro", num_blocks=3),
                   dict(channels=4, num_classes=5, num_layers=1, image_size=16)),
}
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny convolutions gain nothing from threads, and on a busy 2-core machine their spin-waits
    # cost 100x; run this module single-threaded and restore the setting after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(batch=4, channels=3, size=16, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=g, dtype=dtype)


def build(name, seed, **extra):
    space, kw = SPACES[name]
    kw = {**kw, **extra}
    torch.manual_seed(seed)
    net = enas.build_supernet(space, **kw).to(F64)
    arch = space.sample(seed=seed)
    child = enas.build_child(space, arch, **kw).to(F64)
    enas.inherit_weights(child, net, arch)
    return space, net, arch, child


def with_ops(space, arch, op):
    """`arch` with every op token set to `op`."""
    tokens = list(arch.tokens)
    for pos in sum((space.positions(suffix=s) for s in (".op", ".op1", ".op2")), []):
        tokens[pos] = op
    return enas.Arch(space, tokens)


# --------------------------------------------------------------------------------------------------
# spaces
# --------------------------------------------------------------------------------------------------
def test_macro_tokens_are_op_then_skip_bits_as_the_official_arc():
    arch = enas.zoo.get("enas_macro_cifar10")
    space = arch.space
    assert space.num_layers == 24 and len(arch.tokens) == 24 + 24 * 23 // 2
    layers = space.layers(arch.tokens)
    assert layers[0] == (0, ()) and layers[1] == (3, (0,)) and layers[2] == (0, (1, 0))
    assert layers[23][0] == 0 and len(layers[23][1]) == 23
    assert space.pool_layers == (7, 15)  # official: floor(24/3) - 1, 2 * floor(24/3) - 1
    assert space.skip_sources((1, 0, 1)) == [0, 2]  # bit 0 is the stem
    kinds = [type(d) for d in space.decisions[:4]]
    assert kinds == [enas.spaces.Choice, Subset, enas.spaces.Choice, Subset]
    assert space.decisions[0].anchor and space.decisions[1].num_options == 0
    assert enas.Arch.parse(space, str(arch)) == arch
    assert space.infer_options(len(arch.tokens)) == {"num_layers": 24}


def test_micro_decisions_line_up_with_the_anchors_and_reset_at_the_reduction_cell():
    arch = enas.zoo.get("enas_micro_cifar10")
    space = arch.space
    assert space.initial_anchors == 2 and space.anchor_resets == (20,)
    normal, reduce = space.cells(arch.tokens)
    assert normal[0] == (0, 2, 0, 0) and reduce[2] == (1, 1, 3, 1)
    assert space.loose_ends(normal) == [2, 3, 4, 5, 6] and space.loose_ends(reduce) == [2, 4, 5, 6]
    for offset in (0, 20):  # both cells: block b's indices see the 2 inputs and b earlier blocks
        for b in range(5):
            d = space.decisions[offset + 4 * b:offset + 4 * b + 4]
            assert [type(x) for x in d] == [Predecessor, enas.spaces.Choice, Predecessor, enas.spaces.Choice]
            assert d[0].num_options == d[2].num_options == 2 + b
            assert [x.anchor for x in d] == [False, False, False, True]
    with pytest.raises(ArchError, match="position 0"):
        enas.Arch.parse(space, "2" + " 0" * 39)  # block 0 reads only the two inputs
    with pytest.raises(ArchError, match="position 26"):
        enas.Arch.parse(space, " ".join(["0"] * 26 + ["3"] + ["0"] * 13))  # reduction block 1: nodes 0..2


# --------------------------------------------------------------------------------------------------
# supernet == child
# --------------------------------------------------------------------------------------------------
# (eval mode, float64, several architectures: tests/test_registry.py, for every registered space)
@pytest.mark.parametrize("name", SPACES)
def test_arch_as_a_tensor_and_a_child_holds_fewer_weights(name):
    space, net, arch, child = build(name, 1)
    x = images(seed=1)
    net.eval(), child.eval()
    assert torch.allclose(net(x, arch.tensor()), child(x), rtol=0, atol=1e-10)  # arch as a LongTensor
    # a child holds only its architecture's weights: strictly fewer than the supernet
    assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in net.parameters())


def test_micro_output_conv_is_the_loose_ends_slices():
    space, net, arch, child = build("enas_micro", 2)
    slices = [s for s in enas.nn.param_map(child, net) if s.child.endswith("out_conv.weight")]
    normal, reduce = space.cells(arch.tokens)
    layer0 = [s for s in slices if s.child == "cells.0.out_conv.weight"]
    assert [s.supernet for s in layer0] == [f"cells.0.out_w.{k}" for k in space.loose_ends(normal)]
    c = child.cells[0].out_conv.out_channels
    assert [s.child_index[1] for s in layer0] == [slice(j * c, (j + 1) * c) for j in range(len(layer0))]


@pytest.mark.parametrize("name", SPACES)
def test_equal_in_train_mode_too_and_in_float32(name):
    # BN uses batch statistics in both, so train mode (without dropout) is deterministic as well
    space, net, arch, child = build(name, 5)
    x = images(seed=5)
    assert torch.allclose(net(x, arch), child(x), rtol=0, atol=1e-10)
    net32, child32 = net.float().eval(), child.float().eval()
    x32 = x.float()
    assert torch.allclose(net32(x32, arch), child32(x32), rtol=0, atol=1e-5)


def test_micro_aux_head_is_inherited():
    space, net, arch, child = build("enas_micro", 3, aux_head=True)
    x = images(seed=3)
    (logits, aux), (c_logits, c_aux) = net(x, arch), child(x)
    assert aux.shape == (4, 5)
    assert torch.allclose(logits, c_logits, atol=1e-10) and torch.allclose(aux, c_aux, atol=1e-10)
    net.eval()
    assert net(x, arch).shape == (4, 5)  # eval: logits only


# --------------------------------------------------------------------------------------------------
# gradients reach exactly the sampled weights
# --------------------------------------------------------------------------------------------------
def expected_macro_params(net, space, arch) -> set[str]:
    layers = space.layers(arch.tokens)
    names = {"stem", "fc"} | {f"ops.{i}.{op}" for i, (op, _) in enumerate(layers)}
    names |= {f"combine.{i}" for i in range(1, len(layers))}
    names |= {f"reduce.{p}_{k}" for p, ks in macro.needed_reductions(space, layers).items() for k in ks}
    return {n for n, _ in net.named_parameters() if any(n.startswith(m + ".") for m in names)}


def expected_micro_params(net, space, arch) -> set[str]:
    normal, reduce = space.cells(arch.tokens)
    prefixes = {"stem.", "fc.", "pre_reduce."}
    for layer in range(len(net.cells)):
        blocks = reduce if layer in net.reduction_layers else normal
        prefixes |= {f"cells.{layer}.calib0.", f"cells.{layer}.calib1.", f"cells.{layer}.out_bn."}
        prefixes |= {f"cells.{layer}.out_w.{k}" for k in space.loose_ends(blocks)}
        for b, blk in enumerate(blocks):
            for s in range(2):
                prefixes.add(f"cells.{layer}.ops.{b}.{s}.{blk[2 * s]}.{blk[2 * s + 1]}.")
    return {n for n, _ in net.named_parameters() if any(n == p or n.startswith(p) for p in prefixes)}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("name", SPACES)
def test_only_the_sampled_weights_receive_gradients(name, seed):
    space, net, arch, _ = build(name, seed)
    net(images(seed=seed), arch).square().sum().backward()
    got = {n for n, p in net.named_parameters() if p.grad is not None}
    expected = (expected_macro_params if name == "enas_macro" else expected_micro_params)(net, space, arch)
    assert got == expected
    for n in expected:
        assert net.get_parameter(n).grad.abs().sum() > 0, n


# --------------------------------------------------------------------------------------------------
# every op is reachable and used
# --------------------------------------------------------------------------------------------------
def op_modules(net, name):
    """op index -> the supernet's modules of that op."""
    out = {}
    if name == "enas_macro":
        for layer in net.ops:
            for o, m in enumerate(layer):
                out.setdefault(o, []).append(m)
    else:
        for cell in net.cells:
            for block in cell.ops:
                for slot in block:
                    for node in slot:
                        for o, m in enumerate(node):
                            out.setdefault(o, []).append(m)
    return out


@pytest.mark.parametrize("name", SPACES)
def test_every_op_is_reachable_and_runs_only_when_sampled(name):
    space, net, arch, _ = build(name, 0)
    labels = MACRO_OPS if name == "enas_macro" else MICRO_OPS
    modules = op_modules(net, name)
    assert sorted(modules) == list(range(len(labels)))
    calls = {}
    for o, ms in modules.items():
        for m in ms:
            m.register_forward_hook(lambda mod, inp, out, o=o: calls.__setitem__(o, calls.get(o, 0) + 1))
    for op in range(len(labels)):
        calls.clear()
        a = with_ops(space, arch, op)
        assert net(images(), a).shape == (4, 5)
        assert set(calls) == {op}, labels[op]


# --------------------------------------------------------------------------------------------------
# zoo, final networks, other image shapes
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("zoo_name", ["enas_macro_cifar10", "enas_micro_cifar10"])
@pytest.mark.parametrize("style", ["search", "final"])
def test_zoo_archs_build_and_run(zoo_name, style):
    arch = enas.zoo.get(zoo_name)
    kw = dict(channels=4)
    if arch.space.name == "enas_micro":
        kw.update(num_layers=2, aux_head=True)
    net = enas.build_child(arch.space, arch, style=style, **kw)
    out = net(images(2, size=32, dtype=torch.float32))
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    net.eval()
    assert net(images(2, size=32, dtype=torch.float32)).shape == (2, 10)


@pytest.mark.parametrize("style", ["search", "final"])
@pytest.mark.parametrize("name", SPACES)
def test_fashion_mnist_shaped_input(name, style):
    # 1 x 28 x 28: the reductions go 28 -> 14 -> 7
    space, kw = SPACES[name]
    kw = {**kw, "in_channels": 1, "image_size": 28} if name == "enas_micro" else {**kw, "in_channels": 1}
    arch = space.sample(seed=0)
    x = images(3, channels=1, size=28, dtype=torch.float32)
    child = enas.build_child(space, arch, style=style, **kw)
    assert child(x).shape == (3, 5)
    if style == "search":
        assert enas.build_supernet(space, **kw)(x, arch).shape == (3, 5)
    if name == "enas_micro":
        net = enas.build_child(space, arch, style=style, aux_head=True, **kw)
        logits, aux = net(x)
        assert logits.shape == aux.shape == (3, 5)


def test_micro_final_network_size_matches_the_paper():
    # official cifar10_micro_final.sh: 15 layers (5 per stage) + 2 reductions, 36 filters; the paper
    # reports 4.6M parameters. The count here includes the auxiliary head (official micro_child.py
    # prints the count without it: 3.89M).
    arch = enas.zoo.get("enas_micro_cifar10")
    net = enas.build_child(arch.space, arch, style="final", channels=36, num_layers=5, aux_head=True)
    n = sum(p.numel() for p in net.parameters())
    assert abs(n - 4.6e6) / 4.6e6 < 0.15, n


def test_drop_path_is_random_in_training_and_off_in_eval():
    arch = enas.zoo.get("enas_micro_cifar10")
    torch.manual_seed(0)
    net = enas.build_child(arch.space, arch, style="final", channels=4, num_layers=1, drop_path=0.5)
    x = images(4, size=16, dtype=torch.float32)
    assert not torch.allclose(net(x), net(x))
    net.drop_path_progress = 0.0  # start of training: the official schedule drops nothing yet
    assert torch.allclose(net(x), net(x))
    net.drop_path_progress = 1.0
    net.eval()
    assert torch.allclose(net(x), net(x))


# --------------------------------------------------------------------------------------------------
# user errors
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SPACES)
def test_user_errors(name):
    space, net, arch, child = build(name, 0)
    other = enas.get_space(name, **({"num_layers": 5} if name == "enas_macro" else {"num_blocks": 2}))
    with pytest.raises(ArchError):
        net(images(), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ArchError):
        net(images(), other.sample(seed=0))
    with pytest.raises(ConfigError):
        net(images(channels=1), arch)
    with pytest.raises(ConfigError, match="even"):
        enas.build_supernet(space, channels=5)
    with pytest.raises(ConfigError):
        enas.build_supernet(space, style="final")
    final = enas.build_child(space, arch, style="final", **SPACES[name][1])
    with pytest.raises(ConfigError, match="from scratch"):
        enas.inherit_weights(final, net, arch)
    wrong = "enas_micro" if name == "enas_macro" else "enas_macro"
    with pytest.raises(ConfigError, match="builds the spaces whose models are"):
        (macro if name == "enas_macro" else micro).supernet(enas.get_space(wrong))
