"""Full NAS and random search on the real PTB files, in process (the executors have their own tests)."""
import json

import pytest
import torch

import enas
import enas.train
from enas import child_training
from enas.config import apply_overrides, preset
from enas.strategies import resume_search, start_search
from enas.strategies.derive import derive

from conftest import run_cli


@pytest.fixture
def nas_cfg(ptb_dir):
    cfg = preset("search", "ptb", "tiny")
    cfg.data_dir = str(ptb_dir)
    return apply_overrides(cfg, ["strategy=nas", "nas_updates=2", "controller.num_aggregate=2", "child_epochs=2",
                                 "child_max_steps=3", "eval_max_batches=1", "space_options.num_nodes=3"])


def _records(run):
    return [json.loads(x) for x in (run / "archs.jsonl").read_text().splitlines()]


def test_nas_trains_children_from_scratch_and_updates_the_controller(nas_cfg, tmp_path, monkeypatch):
    built = []
    real_build = enas.train.build_child
    monkeypatch.setattr(enas.train, "build_child", lambda *a, **kw: built.append(real_build(*a, **kw)) or built[-1])
    monkeypatch.setattr(enas.nn, "build_supernet", lambda *a, **kw: pytest.fail("full NAS built a supernet"))
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
    assert search.run(max_children=3) is False  # mid second update: one child of it done
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


def test_random_search_without_sharing_leaves_the_controller_alone(nas_cfg, tmp_path):
    cfg = apply_overrides(nas_cfg, ["strategy=random", "weight_sharing=false"])
    search = start_search(cfg, tmp_path / "run", progress=False)
    before = {k: v.clone() for k, v in search.controller.state_dict().items()}
    assert search.run() is True
    assert all(torch.equal(before[k], v) for k, v in search.controller.state_dict().items())
    assert "random" in json.loads((tmp_path / "run" / "arch.json").read_text())["how"]


def test_random_search_with_sharing_derives_from_uniform_archs_and_resumes_exactly(tiny_search_cfg, tmp_path):
    cfg = apply_overrides(tiny_search_cfg, ["strategy=random"])
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    start_search(cfg, whole, progress=False).run()
    assert start_search(cfg, parts, progress=False).run(max_units=5) is False
    assert resume_search(parts, progress=False).run() is True
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    assert a["controller_step"] == 0, "random search trains no controller"
    result = derive(whole, progress=False)
    assert "uniformly at random" in result["how"]
    assert derive(parts, progress=False)["arch"] == result["arch"]


def test_compare_writes_a_table_for_every_strategy(ptb_dir, tmp_path):
    r = run_cli("compare", "--space", "enas_rnn", "--task", "ptb", "--data-dir", str(ptb_dir), "--budget", "4",
                "--seeds", "2", "--logdir", str(tmp_path / "cmp"), "--quiet",
                "--set", "space_options.num_nodes=3", "--set", "shared_steps=4", "--set", "controller.steps=2",
                "--set", "eval_max_batches=1", "--set", "derive_samples=2", "--set", "controller.num_aggregate=2",
                "--set", "child_max_steps=2", "--train-set", "max_steps=3", "--train-set", "eval_max_batches=1",
                timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    for label in ("| enas |", "| nas |", "| random (shared weights) |", "| random (from scratch) |"):
        assert label in table
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert len(rows) == 8 and all(r["final"] > 1 for r in rows)
