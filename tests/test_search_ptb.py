"""ENAS search on the real PTB files: the run directory, exact resume, and non-finite losses."""
import json
import math
import signal

import pytest
import torch

import enas
from enas.strategies import derive
from enas.strategies.enas import Enas

from conftest import run_cli, start_cli, wait_until


def _controller_weights(run_dir):
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state["controller"], state["supernet"]


def test_search_writes_the_run_directory(tiny_search_cfg, tmp_path):
    run = tmp_path / "run"
    search = Enas.start(tiny_search_cfg, run, progress=False)
    assert search.run() is True
    result = derive(run, progress=False)

    config = json.loads((run / "config.json").read_text())
    assert config["config"]["enas"]["controller"]["steps"] == 3 and config["torch"] == torch.__version__
    records = [json.loads(line) for line in (run / "archs.jsonl").read_text().splitlines()]
    c = tiny_search_cfg
    controller_records = [r for r in records if r["phase"] == "controller"]
    assert len(controller_records) == c.epochs * c.section.controller.steps * c.section.controller.num_aggregate
    assert len([r for r in records if r["phase"] == "derive"]) == c.derive_samples
    for r in controller_records:
        enas.Arch.parse(search.space, r["arch"])
        bonus = c.section.controller.entropy_weight * r["entropy"]
        assert r["reward"] == pytest.approx(80.0 / r["metric"] + bonus, rel=1e-5)

    arch = enas.Arch.from_json(json.loads((run / "arch.json").read_text()))
    assert arch.space == search.space
    assert result["metric"] == min(r["metric"] for r in records if r["phase"] == "derive")

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"shared/loss", "shared/ppl", "shared/lr", "shared/throughput", "controller/reward",
            "controller/baseline", "controller/advantage", "controller/entropy", "controller/loss",
            "valid/ppl"} <= tags
    assert "derive/cell" in events.Tags()["images"]
    assert any(t.startswith("derive/arch") for t in events.Tags()["tensors"])
    losses = [s.value for s in events.Scalars("shared/loss")]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < math.log(10000)  # learnt something


def test_resume_equals_an_uninterrupted_run(tiny_search_cfg, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    Enas.start(tiny_search_cfg, whole, progress=False).run()
    # stop after 4 units (mid shared phase), then after 5 more (mid controller phase), then finish
    assert Enas.start(tiny_search_cfg, parts, progress=False).run(max_units=4) is False
    assert Enas.resume(parts, progress=False).run(max_units=5) is False
    assert Enas.resume(parts, progress=False).run() is True

    (ctrl_a, net_a), (ctrl_b, net_b) = _controller_weights(whole), _controller_weights(parts)
    for key in ctrl_a:
        assert torch.equal(ctrl_a[key], ctrl_b[key]), key
    for key in net_a:
        assert torch.equal(net_a[key], net_b[key]), key
    assert derive(whole, progress=False)["arch"] == derive(parts, progress=False)["arch"]
    lines = lambda run: [json.loads(x)["arch"] for x in (run / "archs.jsonl").read_text().splitlines()]
    assert lines(whole) == lines(parts), "archs.jsonl holds each reward exactly once"


def test_ctrl_c_saves_and_resume_finishes(ptb_dir, tmp_path):
    """A real SIGINT to the CLI: exit 130 with a checkpoint; --resume ends like an uninterrupted run."""
    sets = ["--set", "shared_steps=30", "--set", "controller.steps=3", "--set", "epochs=1",
            "--set", "eval_max_batches=2", "--set", "log_every=1"]
    base = ["search", "--data-dir", str(ptb_dir), "--preset", "tiny", "--quiet", *sets]
    proc = start_cli(*base, "--logdir", str(tmp_path / "stopped"))
    wait_until(proc, lambda: list((tmp_path / "stopped").glob("events.out.tfevents.*")))  # the loop has started
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err and (tmp_path / "stopped" / "checkpoints" / "last.pt").exists()
    state = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert state["shared_step"] < 30, "stopped before the end"

    resumed = run_cli(*base, "--logdir", str(tmp_path / "stopped"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole = run_cli(*base, "--logdir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    (ctrl_a, _), (ctrl_b, _) = _controller_weights(tmp_path / "whole"), _controller_weights(tmp_path / "stopped")
    assert all(torch.equal(ctrl_a[k], ctrl_b[k]) for k in ctrl_a)


def test_non_finite_loss_is_skipped_and_counted(tiny_search_cfg, tmp_path, monkeypatch):
    search = Enas.start(tiny_search_cfg, tmp_path / "run", progress=False)
    real = search.engine.task.train_forward
    calls = {"n": 0}

    def poisoned(model, arch, x, y, hidden):
        loss, hidden = real(model, arch, x, y, hidden)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] in (2, 3) else loss), hidden

    monkeypatch.setattr(search.engine.task, "train_forward", poisoned)
    search.run(max_units=1)
    before = {k: v.clone() for k, v in search.engine.supernet.state_dict().items()}
    search.run(max_units=2)  # both poisoned steps
    after = search.engine.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a NaN step changed the weights"
    assert int(search.engine.skipped) == 2
    search.run(max_units=1)  # a finite step moves them again
    assert any(not torch.equal(before[k], search.engine.supernet.state_dict()[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in search.engine.supernet.state_dict().values())


def test_paper_preset_runs_at_a_small_size(ptb_dir, tmp_path):
    """Every option the paper preset turns on (weight decay, all dropouts, hidden-norm clip, the
    index-distance prior, lr decay) goes through one epoch of the real loop."""
    from enas.config import apply_overrides
    from enas.strategies import preset

    cfg = preset("search", "ptb", "paper")
    cfg.data_dir = str(ptb_dir)
    cfg = apply_overrides(cfg, ["model.hidden_size=16", "shared_steps=3", "controller.steps=2",
                                "controller.num_aggregate=3", "epochs=2", "shared.lr_decay_start=1",
                                "eval_max_batches=1", "batch_size=8", "eval_batch_size=8", "log_every=1"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    assert search.run() is True
    assert search.engine.optimizer.param_groups[0]["lr"] == pytest.approx(8.75 * 0.96)
    assert int(search.engine.skipped) == 0
    assert derive(tmp_path / "run", samples=3, progress=False)["metric"] > 1
