"""What every registered space gets for free: one parametrised test per promise of the registration
(ARCHITECTURE.md, "What the tests hold"), at the sizes of the space's ("search", "tiny") preset on its
first task.

A space registered later is picked up by `enas.list_spaces()`; its task must be in TASK_RUNS (how
its models take data), which is the only per-task knowledge here.
"""
from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import enas
from enas import registry
from enas.controller import make_controller
from enas.nn import param_map, used_mask
from enas.spaces import get_space_class
from enas.strategies import preset
from enas.tasks import task_class

F64 = torch.float64
BATCH = 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny models gain nothing from threads; on a busy 2-core machine their spin-waits cost a lot
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------
# per task: the data facts a model is sized by, and how its models run
# --------------------------------------------------------------------------------------------------
class LanguageModelRun:
    """PTB-like: tokens [T, B] -> supernet(x, hidden, arch) / child(x, hidden) -> (logits [T,B,V], hidden)."""

    vocab, steps = 30, 5
    facts = SimpleNamespace(vocab_size=vocab)

    def inputs(self, seed: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, self.vocab, (self.steps + 1, BATCH), generator=g)
        return x[:-1], x[1:]  # inputs, next-token targets

    def supernet(self, net, x, arch):
        return net(x, None, arch)[0]

    def child(self, net, x):
        return net(x, None)[0]

    def loss(self, out, y):
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


class ImageRun:
    """Images [B, C, H, W] -> supernet(x, arch) / child(x) -> logits [B, classes] (or (logits, aux))."""

    classes, size = 5, 16

    def __init__(self, channels: int):
        self.channels = channels
        self.facts = SimpleNamespace(data=SimpleNamespace(channels=channels, num_classes=self.classes,
                                                          image_size=self.size))

    def inputs(self, seed: int, dtype):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(BATCH, self.channels, self.size, self.size, generator=g, dtype=dtype)
        return x, torch.randint(0, self.classes, (BATCH,), generator=g)

    def supernet(self, net, x, arch):
        return net(x, arch)

    def child(self, net, x):
        return net(x)

    def loss(self, out, y):
        logits, aux = out if isinstance(out, tuple) else (out, None)
        return F.cross_entropy(logits, y) + (0.4 * F.cross_entropy(aux, y) if aux is not None else 0.0)


TASK_RUNS = {"ptb": LanguageModelRun(), "cifar10": ImageRun(3), "fashion_mnist": ImageRun(1)}


def logits(out):
    return out[0] if isinstance(out, tuple) else out


# --------------------------------------------------------------------------------------------------
# helpers: a registered space at its tiny sizes
# --------------------------------------------------------------------------------------------------
def tiny(name: str, kind: str = "search"):
    """(space, task run, config, model kwargs) of the space's (kind, "tiny") preset on its first task."""
    task = get_space_class(name).tasks[0]
    search = preset("search", task, "tiny", name)
    cfg = search if kind == "search" else preset(kind, task, "tiny", name)
    space = enas.get_space(name, **search.space_options)
    # the keywords the task itself gives its models (enas/tasks), from the data facts above
    kw = task_class(task).model_kwargs(TASK_RUNS[task].facts, cfg.model)
    return space, TASK_RUNS[task], cfg, kw


def sample_archs(space, n: int = 3) -> list:
    return [space.sample(seed=seed) for seed in range(n)]


def build_pair(name: str, arch, seed: int = 0, dtype=F64):
    space, run, cfg, kw = tiny(name)
    torch.manual_seed(seed)
    net = enas.build_supernet(space, **kw).to(dtype)
    child = enas.build_child(space, arch, **kw).to(dtype)
    return net, child, run


def check_round_trip(name: str) -> None:
    space, *_ = tiny(name)
    controller = enas.Controller(space)
    for arch in sample_archs(space, 4) + controller.sample(4).archs(space):
        assert enas.Arch.parse(space, str(arch)).tokens == arch.tokens


def check_controller_log_prob(name: str) -> None:
    space, _, cfg, _ = tiny(name)
    torch.manual_seed(0)
    controller, _ = make_controller(space, cfg.section.controller, torch.device("cpu"))
    sample = controller.sample(6)
    again = controller.log_prob(sample.tokens)
    assert torch.allclose(sample.log_prob, again.log_prob, atol=1e-5)
    assert torch.allclose(sample.entropy, again.entropy, atol=1e-5)
    assert (sample.log_prob < 0).all()  # a real distribution: no architecture is certain


def check_supernet_equals_child(name: str, seeds=(0, 1, 2)) -> None:
    space, *_ = tiny(name)
    for seed in seeds:
        arch = space.sample(seed=seed)
        net, child, run = build_pair(name, arch, seed)
        enas.inherit_weights(child, net, arch)
        net.eval(), child.eval()
        x, _ = run.inputs(seed, F64)
        with torch.no_grad():
            want, got = logits(run.child(child, x)), logits(run.supernet(net, x, arch))
        assert torch.allclose(got, want, rtol=0, atol=1e-10), (str(arch), (got - want).abs().max())


def check_only_used_weights_get_gradient(name: str, seed: int = 0) -> None:
    space, *_ = tiny(name)
    arch = space.sample(seed=seed)
    net, child, run = build_pair(name, arch, seed, dtype=torch.float32)
    masks = used_mask(net, param_map(child, net))
    # (a space may share every weight among all its architectures: then every entry is used)
    net.train()
    x, _ = run.inputs(seed, torch.float32)
    logits(run.supernet(net, x, arch)).square().sum().backward()
    nonzero = 0
    for n, p in net.named_parameters():
        if p.grad is None:  # the forward never reached it
            continue
        stray = (p.grad != 0) & ~masks[n]
        assert not stray.any(), f"{n}: {int(stray.sum())} entries outside the architecture got gradient"
        nonzero += int(((p.grad != 0) & masks[n]).sum())
    total_used = sum(int(m.sum()) for m in masks.values())
    assert nonzero > 0.5 * total_used, f"only {nonzero} of {total_used} used entries got gradient"


def check_final_child_trains(name: str, seed: int = 0) -> None:
    space, run, cfg, kw = tiny(name, kind="train")
    arch = space.sample(seed=seed)
    torch.manual_seed(seed)
    child = enas.build_child(space, arch, **kw)
    child.train()
    x, y = run.inputs(seed, torch.float32)
    opt = torch.optim.SGD(child.parameters(), lr=cfg.optim.lr)
    loss = run.loss(run.child(child, x), y)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = run.loss(run.child(child, x), y)
    assert torch.isfinite(after) and after != loss


def check_drawing(name: str) -> None:
    space, *_ = tiny(name)
    for arch in sample_archs(space, 2):
        text = space.text(arch.tokens)
        assert isinstance(text, str) and text.strip()
        fig = space.figure(arch.tokens)
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png")  # arrows are laid out at draw time: drawing must work


CHECKS = [check_round_trip, check_controller_log_prob, check_supernet_equals_child,
          check_only_used_weights_get_gradient, check_final_child_trains, check_drawing]


# --------------------------------------------------------------------------------------------------
# every registered space
# --------------------------------------------------------------------------------------------------
SPACES = enas.list_spaces()


@pytest.mark.parametrize("name", SPACES)
def test_registration_is_complete(name):
    cls = get_space_class(name)
    assert cls.tasks and all(t in TASK_RUNS for t in cls.tasks), cls.tasks
    # every space runs at every size: tiny (a minute), small (one machine), paper
    assert set(cls.presets) == {(kind, size) for kind in ("search", "train") for size in ("tiny", "small", "paper")}
    for task in cls.tasks:
        for size in ("tiny", "small", "paper"):
            cfg = preset("search", task, size, name)
            assert (cfg.space, cfg.task) == (name, task)
            assert preset("train", task, size, name).task == task


@pytest.mark.parametrize("name", SPACES)
def test_arc_strings_round_trip(name):
    check_round_trip(name)


@pytest.mark.parametrize("name", SPACES)
def test_controller_log_prob_of_its_own_samples(name):
    check_controller_log_prob(name)


@pytest.mark.parametrize("name", SPACES)
def test_supernet_equals_child_with_inherited_weights(name):
    check_supernet_equals_child(name)


@pytest.mark.parametrize("name", SPACES)
def test_only_the_architectures_weights_get_gradient(name):
    check_only_used_weights_get_gradient(name)


@pytest.mark.parametrize("name", SPACES)
def test_final_style_child_trains_from_scratch(name):
    check_final_child_trains(name)


@pytest.mark.parametrize("name", SPACES)
def test_text_and_figure(name):
    check_drawing(name)


# --------------------------------------------------------------------------------------------------
# a space registered here gets the same tests
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def registered_copy():
    """A trivial subclass of the micro space under a new name, registered for one test."""
    parent = get_space_class("enas_micro")
    cls = enas.spaces.register(type("MicroCopy", (parent,), {"name": "test_micro_copy"}))
    yield cls.name
    registry.SPACES.unregister(cls.name)


def test_a_newly_registered_space_gets_every_check(registered_copy):
    assert registered_copy in enas.list_spaces()
    space, *_ = tiny(registered_copy)
    assert space.name == registered_copy
    assert preset("search", "cifar10", "tiny", registered_copy).space == registered_copy
    for check in CHECKS:
        check(registered_copy)


def test_the_copy_is_gone_after_the_test():
    assert "test_micro_copy" not in enas.list_spaces()
