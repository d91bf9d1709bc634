"""A strategy is one registered class: this file registers a throwaway one (a weight-sharing search that
trains on a fixed cycle of uniform architectures), and the commands take it as they take the package's
own: `--help`, `enas config`, `search`, a stop and `--resume` (exactly), `derive` and `compare`. Then
what every registration promises, for every registered strategy."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch

import enas
from enas import registry, rundir
from enas.cli import main
from enas.config import apply_overrides, to_dict
from enas.errors import ConfigError
from enas.strategies import get_strategy, list_strategies, preset, start_search
from enas.strategies.base import register
from enas.strategies.weight_sharing import WeightSharingSearch

NAME = "test_cycle"


@dataclass
class CycleConfig:
    archs: int = 3  # architectures in the cycle

    ranges: ClassVar[dict] = {"archs": ">= 1"}
    fixed_keys: ClassVar[tuple[str, ...]] = ("archs",)


class CyclePolicy:
    """`archs` uniform architectures drawn once (seeded), trained on in turn; derive scores them."""

    unit = "update"
    steps = 0
    candidates_from = "of a fixed cycle"

    def __init__(self, engine, k: int, seed: int):
        rng = random.Random(seed)
        self.archs = torch.tensor([engine.space.sample(rng=rng).tokens for _ in range(k)], device=engine.device)
        self.next = 0

    def sample(self, n: int) -> torch.Tensor:
        rows = [(self.next + j) % len(self.archs) for j in range(n)]
        self.next += n
        return self.archs[rows]

    def best(self) -> torch.Tensor:
        return self.archs[0]

    def candidates(self, n: int) -> torch.Tensor:
        return self.archs[:n]

    def flush(self) -> None:
        pass

    def state_dict(self) -> dict:
        return {"cycle_next": self.next}

    def load_state_dict(self, state: dict) -> None:
        self.next = state["cycle_next"]


class Cycle(WeightSharingSearch):
    name = NAME
    description = "a fixed cycle of uniform architectures trains the shared weights (a test's own)"
    Section = CycleConfig
    validated = "the first architecture of the cycle"

    def make_policy(self):
        return CyclePolicy(self.engine, self.cfg.test_cycle.archs, self.cfg.seed)

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        e = self.engine
        with e.loop({"shared": (e.shared_steps, "shared step")}, self.save, max_units, deadline) as loop:
            while loop.epoch < self.cfg.epochs:
                for _ in loop.units("shared"):
                    e.train_step(e.next_arch(self.policy.sample))
                e.validate(self.policy.best)
                loop.end_epoch()
        return loop.finished


@pytest.fixture
def cycle():
    register(Cycle)
    yield Cycle
    registry.STRATEGIES.unregister(NAME)


SMALL = ["--set", "space_options.num_nodes=3", "--set", "shared_steps=5", "--set", "epochs=2",
         "--set", "log_every=2", "--set", "eval_max_batches=1", "--set", "derive_samples=2"]


def _search(ptb_dir, run, *args) -> list[str]:
    return ["search", "--strategy", NAME, "--preset", "tiny", "--data-dir", str(ptb_dir), "--logdir", str(run),
            "--device", "cpu", "--quiet", *SMALL, *args]


def test_a_registered_strategy_is_offered_and_configured(cycle, capsys):
    assert NAME in enas.list_strategies()
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    assert f"{NAME} {Cycle.description}" in " ".join(capsys.readouterr().out.split())
    assert main(["config", "--strategy", NAME, "--preset", "tiny", "--set", f"{NAME}.archs=5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{NAME}.archs=5" in lines and f"strategy={NAME}" in lines
    cfg = preset("search", "ptb", "tiny", strategy=NAME)
    assert type(cfg) is Cycle.config_class and cfg.section == CycleConfig()
    with pytest.raises(ConfigError, match=f"{NAME}.archs must be >= 1"):
        apply_overrides(cfg, [f"{NAME}.archs=0"])


def test_a_registered_strategy_searches_resumes_exactly_and_derives(cycle, ptb_dir, tmp_path, capsys):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(_search(ptb_dir, whole)) == 0
    out = capsys.readouterr().out
    assert f"{NAME} search of enas_rnn on ptb finished" in out and "the first architecture of the cycle" in out

    cfg = apply_overrides(preset("search", "ptb", "tiny", strategy=NAME),
                          [f"data_dir={ptb_dir}", "device=cpu", *SMALL[1::2]])
    assert start_search(cfg, parts, progress=False).run(max_units=3) is False  # mid window, mid epoch 1
    assert main(_search(ptb_dir, parts, "--resume")) == 0
    capsys.readouterr()
    a, b = (torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (whole, parts))
    assert a["cycle_next"] == b["cycle_next"] and a["shared_step"] == b["shared_step"] == 10
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    assert json.loads((whole / "config.json").read_text())["config"][NAME] == {"archs": 3}

    assert main(["derive", str(whole), "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "best of 2 architectures of a fixed cycle" in result["how"]
    assert main(["derive", str(parts), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"] == result["arch"]


def test_compare_takes_its_entrants_from_the_registry(cycle, ptb_dir, tmp_path):
    root = tmp_path / "cmp"
    assert main(["compare", "--strategies", f"{NAME},random", "--data-dir", str(ptb_dir), "--budget", "2",
                 "--seeds", "1", "--logdir", str(root), "--quiet", "--device", "cpu", *SMALL,
                 "--train-set", "max_steps=3", "--train-set", "eval_max_batches=1"]) == 0
    rows = json.loads((root / "comparison.json").read_text())
    assert [r["strategy"] for r in rows] == [NAME, "random (shared weights)"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([NAME, "random"])


def test_compare_refuses_a_key_no_entrant_has(ptb_dir, tmp_path, capsys):
    args = ["compare", "--strategies", "random", "--data-dir", str(ptb_dir), "--budget", "1", "--logdir",
            str(tmp_path / "cmp"), "--quiet"]
    assert main([*args, "--set", "controller.steps=2"]) == 2
    assert "none of the strategies compared (random) has controller.steps" in capsys.readouterr().err
    assert main([*args[:2], "enas,nope", *args[3:]]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert rundir.run_files(tmp_path / "cmp") == [], "nothing written"


def test_the_throwaway_strategy_is_gone_after_its_tests():
    assert NAME not in list_strategies()


# --- what every registration promises --------------------------------------------------------------------

@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_declares_itself(name):
    s = get_strategy(name)
    assert s.name == name and s.description and "\n" not in s.description and s.label
    assert s.config_class.for_strategy == name and "strategy" in s.config_class.fixed_keys
    assert s.shared_weights != s.trains_children, "one of the two bases"
    for task in ("ptb", "fashion_mnist"):
        for space in enas.list_spaces():
            if task in enas.spaces.get_space_class(space).tasks and s.unfit(enas.spaces.get_space_class(space),
                                                                             task) is None:
                cfg = preset("search", task, "tiny", space, name)
                assert type(cfg) is s.config_class and cfg.strategy == name
                assert (cfg.section is None) == (s.Section is None)
                assert apply_overrides(cfg, []) == cfg  # valid as the preset gives it
                assert to_dict(cfg)["strategy"] == name
    if s.analyze_groups:
        assert s.shared_weights and s.has_controller, "analyze scores a controller's samples on shared weights"
