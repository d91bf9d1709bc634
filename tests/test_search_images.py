"""ENAS search on images: tiny search + derive + final training on the real Fashion-MNIST files
for every image space, and a search on a CIFAR-10 fixture in the real format."""
import json

import pytest
import torch

import enas
from enas.config import apply_overrides
from enas.spaces import Subset
from enas.strategies import derive, preset
from enas.strategies.enas import Enas
from enas.tasks import images
from enas.train import FinalTraining

from conftest import SHARED_DATA
from test_image_data import write_cifar_fixture

FASHION = SHARED_DATA / "fashion-mnist"


IMAGE_SPACES = [s for s in enas.list_spaces() if "fashion_mnist" in enas.spaces.get_space_class(s).tasks]


@pytest.mark.parametrize("space", IMAGE_SPACES)
def test_fashion_mnist_search_derive_train(space, tmp_path):
    cfg = preset("search", "fashion_mnist", "tiny", space)
    cfg.data_dir = str(FASHION)
    run = tmp_path / "search"
    search = Enas.start(cfg, run, progress=False)
    assert search.run() is True
    derived = derive(run, progress=False)
    records = [json.loads(x) for x in (run / "archs.jsonl").read_text().splitlines()]
    assert len([r for r in records if r["phase"] == "controller"]) == \
        cfg.epochs * cfg.section.controller.steps * cfg.section.controller.num_aggregate
    assert all(0.0 <= r["metric"] <= 1.0 for r in records)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"shared/acc", "shared/loss", "controller/reward", "valid/acc"} <= tags
    has_skips = any(isinstance(d, Subset) for d in search.space.decisions)  # skip connections: a skip rate
    assert ("controller/skip_rate" in tags) == has_skips

    arch = enas.Arch.from_json(derived)
    train_cfg = apply_overrides(preset("train", "fashion_mnist", "tiny", space),
                                [f"data_dir={FASHION}", "max_steps=40"])
    result = FinalTraining.start(arch, train_cfg, tmp_path / "final", progress=False).run()
    assert result["steps"] == train_cfg.epochs * train_cfg.max_steps and result["parameters"] > 1000
    assert result["test_acc"] > 0.15, "120 steps of a real network beat chance (0.1) on Fashion-MNIST"


def test_cifar10_fixture_search_and_resume(tmp_path, monkeypatch):
    md5 = write_cifar_fixture(tmp_path / "cifar")
    # the fixture's own md5s stand in for the official ones (load_cifar10's `checksums` default)
    monkeypatch.setattr(images.load_cifar10, "__defaults__",
                        tuple(md5 if isinstance(d, dict) else d for d in images.load_cifar10.__defaults__))
    cfg = preset("search", "cifar10", "tiny", "enas_micro")
    cfg.data_dir = str(tmp_path / "cifar")
    cfg = apply_overrides(cfg, ["num_valid=20", "batch_size=16", "eval_batch_size=20", "shared_steps=3",
                                "controller.steps=2", "controller.num_aggregate=2", "epochs=2"])
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    Enas.start(cfg, whole, progress=False).run()
    assert Enas.start(cfg, parts, progress=False).run(max_units=4) is False
    assert Enas.resume(parts, progress=False).run() is True
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(parts / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(a["controller"][k], b["controller"][k]) for k in a["controller"])
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
