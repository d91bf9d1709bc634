"""Full NAS and random search on the real PTB files, in process (the executors have their own tests)."""
import json

import pytest
import torch

import enas
from enas import child_training
from enas.config import apply_overrides
from enas.controller import make_controller
from enas.errors import ConfigError
from enas.policy_gradient import moving_average
from enas.strategies import derive, preset, resume_search, start_search
import enas.strategies.engine
import enas.train

from conftest import run_cli


def _records(run):
    return [json.loads(x) for x in (run / "archs.jsonl").read_text().splitlines()]


def test_nas_trains_children_from_scratch_and_updates_the_controller(nas_cfg, tmp_path, monkeypatch):
    built = []
    real_build = enas.train.build_child
    monkeypatch.setattr(enas.train, "build_child", lambda *a, **kw: built.append(real_build(*a, **kw)) or built[-1])
    # both names, and the engine module imported above: patching only enas.nn would leak into later tests
    # through the name enas.strategies.engine binds when it is first imported
    for module in (enas.nn, enas.strategies.engine):
        monkeypatch.setattr(module, "build_supernet", lambda *a, **kw: pytest.fail("full NAS built a supernet"))
    search = start_search(nas_cfg, tmp_path / "run", progress=False)
    before = {k: v.clone() for k, v in search.controller.state_dict().items()}
    assert search.run() is True
    records = _records(tmp_path / "run")
    assert len(records) == 4 and all(r["phase"] == "child" and r["error"] is None for r in records)
    for r in records:  # Zoph & Le: c / valid_ppl^2, the best perplexity of the (last 5) epochs
        assert len(r["metrics"]) == 2 and r["seconds"] > 0
        assert r["reward"] == pytest.approx(80.0 / min(r["metrics"]) ** 2)
    best = json.loads((tmp_path / "run" / "arch.json").read_text())
    assert best["reward"] == max(r["reward"] for r in records)
    assert any(not torch.equal(before[k], v) for k, v in search.controller.state_dict().items())
    # every child has fresh weights: no tensor storage shared between any two of them
    assert len(built) == 4
    storages = [{p.untyped_storage().data_ptr() for p in m.parameters()} for m in built]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not storages[i] & storages[j]


def test_nas_resumes_without_retraining_finished_children(nas_cfg, tmp_path, monkeypatch):
    calls = []
    real = child_training.train_child
    monkeypatch.setattr(child_training, "train_child", lambda payload: calls.append(payload["arch"]) or real(payload))
    search = start_search(nas_cfg, tmp_path / "run", progress=False)
    assert search.run(max_units=3) is False  # mid second update: one child of it done
    assert len(calls) == 3
    assert resume_search(tmp_path / "run", progress=False).run() is True
    assert len(calls) == 4, "only the one unfinished child was trained after the resume"
    assert len(_records(tmp_path / "run")) == 4


def test_a_failing_child_gets_the_floor_reward_and_the_search_goes_on(nas_cfg, tmp_path, monkeypatch):
    real = child_training.train_child
    count = {"n": 0}

    def flaky(payload):
        count["n"] += 1
        if count["n"] == 2:
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(payload)

    monkeypatch.setattr(child_training, "train_child", flaky)
    assert start_search(nas_cfg, tmp_path / "run", progress=False).run() is True
    records = _records(tmp_path / "run")
    failed = [r for r in records if r["error"]]
    assert len(records) == 4 and len(failed) == 1
    assert failed[0]["reward"] == 0.0 and "illegal memory access" in failed[0]["error"]


@pytest.mark.parametrize("task,space,lr", [("ptb", "enas_rnn", 5e-4), ("cifar10", "enas_macro", 6e-4),
                                           ("cifar10", "enas_micro", 6e-4)])
def test_nas_presets_have_the_controller_of_zoph_and_le(task, space, lr):
    for name in ("paper", "tiny"):
        cfg, enas_cfg = preset("search", task, name, space, strategy="nas"), preset("search", task, name, space)
        c = cfg.section.controller
        assert cfg.strategy == "nas" and (c.hidden_size, c.num_layers, c.lr, c.init_range) == (35, 2, lr, 0.08)
        assert enas_cfg.strategy == "enas" and enas_cfg.section.controller.num_layers == 1
        assert (c.anchors, c.op_bias) == (enas_cfg.section.controller.anchors, enas_cfg.section.controller.op_bias)  # the space's
    controller, opt = make_controller(enas.get_space(space), c, torch.device("cpu"))
    assert [(m.input_size, m.hidden_size) for m in controller.lstm] == [(35, 35), (35, 35)]
    weights = torch.cat([p.detach().flatten() for p in controller.parameters()
                         if p is not getattr(controller.soft["op"], "bias", None)])  # b_soft starts at 10
    assert 0.07 < weights.abs().max() <= 0.08 and opt.param_groups[0]["lr"] == lr
    # the paper's policy and update: none of ENAS's shaping, skip penalty, entropy bonus or Adam eps 1e-3
    assert (c.temperature, c.tanh_constant, c.skip_weight, c.entropy_weight) == (0, 0, 0, 0)
    assert c.index_distance_penalty == 0
    assert c.subset_logits == "nas" and enas_cfg.section.controller.subset_logits == "enas"
    assert opt.param_groups[0]["eps"] == 1e-8 and opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert (controller.temperature, controller.tanh_constant) == (None, None)


def _nas_update(cfg, run, rewards):
    """One controller update of a full-NAS search on given children and rewards (no training)."""
    search = start_search(cfg, run, progress=False)
    archs = [str(search.space.sample(seed=k)) for k in range(len(rewards))]
    before = [p.detach().clone() for p in search.controller.parameters()]
    search.reinforce(archs, rewards)
    search.save()
    moved = max((p.detach() - b).abs().max().item() for p, b in zip(search.controller.parameters(), before))
    return search, moved


def test_nas_controller_update_is_the_shared_one(nas_cfg, tmp_path):
    """REINFORCE with the per-architecture baseline, the gradient clip and the skip penalty act in full NAS."""
    search, moved = _nas_update(apply_overrides(nas_cfg, ["controller.entropy_weight=0"]), tmp_path / "plain",
                                [0.3, 0.1, 0.6])
    assert moved > 1e-5
    expected = moving_average(torch.zeros(()), torch.tensor([0.3, 0.1, 0.6]), nas_cfg.section.controller.baseline_decay)
    assert torch.allclose(search.baseline, expected[-1])
    state = torch.load(tmp_path / "plain" / "checkpoints" / "last.pt", weights_only=True)
    assert torch.equal(state["baseline"], search.baseline)
    assert torch.equal(resume_search(tmp_path / "plain", progress=False).baseline, search.baseline)

    # (with Adam's eps 1e-8 a gradient clipped to 1e-9 still steps ~lr / 10: a large eps shows the clip)
    assert _nas_update(apply_overrides(nas_cfg, ["controller.grad_clip=1e-9", "controller.adam_eps=1e-3"]),
                       tmp_path / "clip", [0.3, 0.1, 0.6])[1] < 1e-8
    # skip penalty: no reward signal (equal rewards, no entropy bonus), so only the penalty moves the controller
    macro = apply_overrides(preset("search", "cifar10", "tiny", "enas_macro", strategy="nas"),
                            ["controller.entropy_weight=0", "controller.baseline_decay=0"])
    for weight, moves in ((0.0, False), (0.8, True)):
        cfg = apply_overrides(macro, [f"controller.skip_weight={weight}"])
        assert (_nas_update(cfg, tmp_path / f"skip{weight}", [0.5, 0.5])[1] > 1e-5) == moves


def test_random_search_without_sharing_trains_uniform_children_from_scratch(ptb_dir, tmp_path):
    cfg = preset("search", "ptb", "tiny", strategy="random_scratch")
    assert (cfg.random_scratch.children, cfg.random_scratch.batch) == (3 * 2, 2), "as many as full NAS trains"
    cfg = apply_overrides(cfg, [f"data_dir={ptb_dir}", "random_scratch.children=3", "child_epochs=2",
                                "child_max_steps=3", "eval_max_batches=1", "space_options.num_nodes=3"])
    search = start_search(cfg, tmp_path / "run", progress=False)
    assert not hasattr(search, "controller")
    assert search.run() is True
    records = _records(tmp_path / "run")
    assert [r["step"] for r in records] == [0, 0, 1], "drawn two at a time, the last batch smaller"
    assert "random" in json.loads((tmp_path / "run" / "arch.json").read_text())["how"]


def test_random_search_with_sharing_derives_from_uniform_archs_and_resumes_exactly(tiny_search_cfg, tmp_path):
    cfg = apply_overrides(preset("search", "ptb", "tiny", strategy="random"),
                          [f"data_dir={tiny_search_cfg.data_dir}", "shared_steps=6", "eval_max_batches=3",
                           "derive_samples=4", "log_every=2"])
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    start_search(cfg, whole, progress=False).run()
    assert start_search(cfg, parts, progress=False).run(max_units=5) is False
    assert resume_search(parts, progress=False).run() is True
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    assert a["policy_step"] == 0 and "controller" not in a, "random search trains no controller"
    result = derive(whole, progress=False)
    assert "uniformly at random" in result["how"]
    assert derive(parts, progress=False)["arch"] == result["arch"]


def test_compare_writes_a_table_for_every_strategy(ptb_dir, tmp_path):
    r = run_cli("compare", "--space", "enas_rnn", "--task", "ptb", "--data-dir", str(ptb_dir), "--budget", "4",
                "--seeds", "2", "--logdir", str(tmp_path / "cmp"),
                "--set", "space_options.num_nodes=3", "--set", "shared_steps=4", "--set", "controller.steps=2",
                "--set", "eval_max_batches=1", "--set", "derive_samples=2", "--set", "controller.num_aggregate=2",
                "--set", "child_max_steps=2", "--train-set", "max_steps=3", "--train-set", "eval_max_batches=1",
                timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.startswith("device: "), "the device first, as every command"
    bars = {line.split(":")[0] for line in r.stderr.replace("\r", "\n").splitlines() if "entrant" in line}
    assert bars == {"compare"} and "8/8" in r.stderr, "one bar for the whole comparison"
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    for label in ("| enas |", "| nas |", "| random (shared weights) |", "| random (from scratch) |"):
        assert label in table
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(rows) == 8 and all(r["final"] > 1 for r in rows)


def test_a_task_that_holds_out_images_needs_some(tmp_path):
    from enas.strategies import check_search, start_search

    cfg = apply_overrides(preset("search", "fashion_mnist", "tiny", "enas_macro"), ["num_valid=0"])
    for call in (lambda: check_search(cfg), lambda: start_search(cfg, tmp_path / "run", progress=False)):
        with pytest.raises(ConfigError, match="held-out training images: num_valid must be >= 1"):
            call()
    assert not (tmp_path / "run").exists()


def test_op_bias_switches_the_spaces_own_controller_options():
    from enas.spaces.enas_micro import MICRO_OP_BIAS, MICRO_OP_BIAS_INIT

    cfg = preset("search", "cifar10", "tiny", "enas_micro").section.controller
    space = enas.get_space("enas_micro", num_blocks=2)
    on, _ = make_controller(space, cfg, torch.device("cpu"))
    assert on.op_bias.tolist() == list(MICRO_OP_BIAS) and on._op_bias_init == MICRO_OP_BIAS_INIT
    cfg.op_bias = False
    off, _ = make_controller(space, cfg, torch.device("cpu"))
    assert off.op_bias is None and off._op_bias_init is None
    cfg.op_bias = True  # a space that declares no op biases has none to switch on
    rnn, _ = make_controller(enas.get_space("enas_rnn", num_nodes=3), cfg, torch.device("cpu"))
    assert rnn.op_bias is None
