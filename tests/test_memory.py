"""The controller memorisation regulariser (enas/memory.py, `controller.memory_*`): the memory's fill,
cap and replacement, the loss it adds to the controller update, exact resume and its TensorBoard tags."""
import json

import pytest
import torch

import enas
from enas.config import ControllerConfig, apply_overrides
from enas.controller import Controller
from enas.errors import ConfigError
from enas.memory import ArchMemory
from enas.policy_gradient import reinforce
from enas.strategies import enas as enas_strategy, preset
from enas.strategies.enas import Enas

UNITS = 6 + 3  # units of one epoch of tiny_search_cfg: shared steps + controller updates


def with_memory(cfg, *pairs):
    """The tiny search with the regulariser on: the tiny preset stores 8 rows after epoch 1 (the memory
    is then full), computes the loss from epoch 2 on and replaces 2 rows after every later epoch."""
    return apply_overrides(cfg, ["controller.memory=true", *pairs])


def checkpoint(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def scalars(run_dir) -> dict:
    """tag -> [(step, value)] of the run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


# --- the memory itself ---------------------------------------------------------------------------

def test_the_memory_fills_to_its_size_then_replaces_random_rows():
    memory = ArchMemory(num_tokens=3, size=10, per_epoch=4, replace=3)
    stored = []
    for epoch in range(3):  # 4, 4, then only the 2 that still fit
        n = memory.wanted()
        rows = torch.full((n, 3), epoch, dtype=torch.long)
        memory.store(rows)
        stored.append(n)
    assert stored == [4, 4, 2] and len(memory) == 10 and memory.full
    before = memory.tokens.clone()

    assert memory.wanted() == 3
    memory.store(torch.full((3, 3), 7, dtype=torch.long))
    changed = (memory.tokens != before).any(1)
    assert len(memory) == 10 and int(changed.sum()) == 3  # three distinct rows, the others as they were
    assert (memory.tokens[changed] == 7).all()

    drawn = memory.draw(50)
    assert drawn.shape == (50, 3) and drawn.dtype == torch.long
    assert all(any(torch.equal(row, held) for held in memory.tokens) for row in drawn)


def test_a_memory_with_room_for_less_than_one_epoch_takes_what_fits():
    memory = ArchMemory(num_tokens=2, size=3, per_epoch=5, replace=9)
    assert memory.wanted() == 3
    memory.store(torch.arange(10).reshape(5, 2))  # more than fit: the first 3 rows are kept
    assert len(memory) == 3 and torch.equal(memory.tokens, torch.arange(6).reshape(3, 2))
    assert memory.wanted() == 3  # replacing more rows than it holds replaces them all
    memory.store(torch.full((3, 2), -1))
    assert (memory.tokens == -1).all()


def test_the_memory_round_trips_through_its_state():
    memory = ArchMemory(num_tokens=4, size=6, per_epoch=4, replace=1)
    memory.store(torch.arange(16).reshape(4, 4))
    state = memory.state_dict()
    assert state["tokens"].shape == (4, 4)  # only the rows held

    other = ArchMemory(num_tokens=4, size=6, per_epoch=4, replace=1)
    other.load_state_dict(state)
    assert len(other) == 4 and torch.equal(other.tokens, memory.tokens)
    with pytest.raises(ConfigError, match="memory_size=3"):
        ArchMemory(num_tokens=4, size=3).load_state_dict(state)
    with pytest.raises(ConfigError, match="shape"):
        ArchMemory(num_tokens=5, size=6).load_state_dict(state)
    with pytest.raises(ValueError):
        ArchMemory(num_tokens=4, size=6).draw(1)


# --- the update --------------------------------------------------------------------------------

def test_an_extra_loss_joins_the_one_reinforce_step():
    space = enas.get_space("enas_rnn", num_nodes=3)
    torch.manual_seed(0)
    ctrl = Controller(space, hidden_size=8).to(torch.float64)
    tokens = ctrl.sample(4, generator=torch.Generator().manual_seed(0)).tokens        # [4, L]
    remembered = ctrl.sample(5, generator=torch.Generator().manual_seed(1)).tokens    # [5, L]
    reward, b0 = torch.linspace(0, 1, 4, dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    opt = torch.optim.SGD(ctrl.parameters(), lr=0.0)  # values and gradients only
    grads = lambda: [p.grad.clone() for p in ctrl.parameters()]

    plain = reinforce(ctrl, opt, ctrl.log_prob(tokens), reward, b0, ControllerConfig())
    plain_grads = grads()
    ctrl.zero_grad()
    nll = -ctrl.log_prob(remembered).log_prob.mean()
    (0.5 * nll).backward()
    nll_grads = grads()
    both = reinforce(ctrl, opt, ctrl.log_prob(tokens), reward, b0, ControllerConfig(),
                     extra_loss=0.5 * -ctrl.log_prob(remembered).log_prob.mean())
    assert torch.allclose(both.scalars["controller/loss"], plain.scalars["controller/loss"] + 0.5 * nll.detach())
    assert all(torch.allclose(g, g0 + g1) for g, g0, g1 in zip(grads(), plain_grads, nll_grads))
    assert torch.equal(both.baseline, plain.baseline) and set(both.scalars) == set(plain.scalars)


# --- in the search -----------------------------------------------------------------------------

def test_one_set_turns_it_on_and_the_presets_hold_the_defaults(tiny_search_cfg):
    paper = preset("search", "ptb", "paper").section.controller
    assert paper.memory is False
    assert (paper.memory_start_epoch, paper.memory_per_epoch, paper.memory_size, paper.memory_replace,
            paper.memory_loss_start_epoch, paper.memory_batch, paper.memory_weight) == (5, 1000, 10000, 100, 10,
                                                                                        100, 1.0)
    assert apply_overrides(preset("search", "ptb", "paper"), ["controller.memory=true"]).section.controller.memory is True
    for space in enas.list_spaces():  # every tiny preset goes through both phases with one --set
        tiny = preset("search", enas.spaces.get_space_class(space).tasks[0], "tiny", space)
        c = apply_overrides(tiny, ["controller.memory=on"]).section.controller
        assert c.memory and c.memory_start_epoch == 1 and c.memory_loss_start_epoch == 2 and tiny.epochs == 2
    with pytest.raises(ConfigError, match="true or false"):
        apply_overrides(tiny_search_cfg, ["controller.memory=sometimes"])

    # the tiny preset with that one --set goes through both phases in its two epochs
    c = with_memory(tiny_search_cfg).section.controller
    assert c.memory_start_epoch == 1 and c.memory_loss_start_epoch == 2 and tiny_search_cfg.epochs == 2


def test_epochs_store_fill_and_replace_in_the_search(tiny_search_cfg, tmp_path):
    cfg = with_memory(tiny_search_cfg, "epochs=4", "controller.memory_start_epoch=2",
                      "controller.memory_per_epoch=5", "controller.memory_size=8", "controller.memory_replace=3",
                      "controller.memory_loss_start_epoch=4")
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    seen, end_epoch = [], search.policy.end_epoch

    def recording():  # the epoch just ended (1-based), and the memory after its end
        end_epoch()
        seen.append((search.engine.epoch + 1, len(search.policy.memory), search.policy.memory.tokens.clone()))

    search.policy.end_epoch = recording
    assert search.run() is True
    assert [(epoch, n) for epoch, n, _ in seen] == [(1, 0), (2, 5), (3, 8), (4, 8)]  # from the end of epoch 2
    assert torch.equal(seen[2][2][:5], seen[1][2][:5])  # filling appends
    assert int((seen[3][2] != seen[2][2]).any(1).sum()) <= 3  # full: 3 rows replaced (a sample may repeat a row)
    space = search.space
    for row in seen[3][2].tolist():
        enas.Arch(space, tuple(row))  # valid architectures of the space


def test_the_memory_loss_is_the_nll_of_the_drawn_rows(tiny_search_cfg, tmp_path, monkeypatch):
    cfg = with_memory(tiny_search_cfg, "controller.memory_weight=0.5")
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    drawn, checked = [], []
    draw = search.policy.memory.draw
    monkeypatch.setattr(search.policy.memory, "draw", lambda n: drawn.append(draw(n)) or drawn[-1])
    real = enas_strategy.reinforce

    def checking(controller, optimizer, sample, reward, baseline, c, extra_loss=None):
        if search.engine.epoch == 0:
            assert extra_loss is None and not drawn  # epoch 1: no loss yet
        else:
            rows = drawn[-1]
            assert rows.shape == (4, search.space.num_tokens)
            with torch.no_grad():
                nll = -controller.log_prob(rows).log_prob.mean()
            assert torch.allclose(extra_loss, 0.5 * nll)
            checked.append(nll)
        return real(controller, optimizer, sample, reward, baseline, c, extra_loss=extra_loss)

    monkeypatch.setattr(enas_strategy, "reinforce", checking)
    assert search.run() is True
    assert len(checked) == len(drawn) == cfg.section.controller.steps  # every update of epoch 2, one batch each
    assert search.logger.last["controller/memory_loss"] == pytest.approx(checked[-1].item(), rel=1e-6)


def test_the_regulariser_changes_the_controller_update_once_its_loss_starts(tiny_search_cfg, tmp_path):
    def controller_after(cfg, name, units):
        search = Enas.start(cfg, tmp_path / name, progress=False)
        search.run(max_units=units)
        return {k: v.clone() for k, v in search.policy.controller.state_dict().items()}

    off = tiny_search_cfg
    on = with_memory(tiny_search_cfg)
    weightless = with_memory(tiny_search_cfg, "controller.memory_weight=0")
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    # through epoch 1 (its controller updates, then the store at its end and one shared step): no change
    assert same(controller_after(off, "off1", UNITS + 1), controller_after(on, "on1", UNITS + 1))
    # the first controller update of epoch 2 carries the loss
    a, b, c = (controller_after(cfg, f"{name}2", 2 * UNITS - 2) for name, cfg in
               (("off", off), ("on", on), ("weightless", weightless)))
    assert not same(a, b)
    assert not same(b, c)  # the same draws (same random numbers) with weight 0: the loss itself moved it


def test_a_search_with_memory_resumes_exactly(tiny_search_cfg, tmp_path):
    cfg = with_memory(tiny_search_cfg, "epochs=3")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert Enas.start(cfg, whole, progress=False).run() is True
    # stops: mid epoch 1; after the store of epoch 1's end; mid epoch 2's updates (loss on); the end
    assert Enas.start(cfg, parts, progress=False).run(max_units=4) is False
    assert Enas.resume(parts, progress=False).run(max_units=UNITS - 3) is False
    assert len(checkpoint(parts)["memory"]["tokens"]) == 8
    assert Enas.resume(parts, progress=False).run(max_units=UNITS - 2) is False
    assert Enas.resume(parts, progress=False).run() is True

    a, b = checkpoint(whole), checkpoint(parts)
    assert torch.equal(a["memory"]["tokens"], b["memory"]["tokens"]) and len(a["memory"]["tokens"]) == 8
    for part in ("controller", "supernet"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    lines = lambda run: [json.loads(x)["arch"] for x in (run / "archs.jsonl").read_text().splitlines()]
    assert lines(whole) == lines(parts)

    tags = scalars(whole)
    sizes = [v for _, v in tags["controller/memory_size"]]
    assert sizes[0] == 0 and sizes[-1] == 8
    first_loss = tags["controller/memory_loss"][0][0]
    assert first_loss > UNITS  # logged only once the loss is on (epoch 2)
    assert dict(tags["controller/memory_size"])[first_loss] == 8
    assert dict(scalars(parts)["controller/memory_loss"]) == pytest.approx(dict(tags["controller/memory_loss"]))


def test_off_by_default_and_random_search_is_unaffected(tiny_search_cfg, tmp_path):
    search = Enas.start(tiny_search_cfg, tmp_path / "off", progress=False)
    assert search.policy.memory is None
    search.run()
    assert "memory" not in checkpoint(tmp_path / "off")
    assert not any("memory" in tag for tag in scalars(tmp_path / "off"))

    # random search trains no controller: its config has none to remember with
    random_cfg = preset("search", "ptb", "tiny", strategy="random")
    with pytest.raises(ConfigError, match="unknown config key 'controller.memory'"):
        apply_overrides(random_cfg, ["controller.memory=true"])
