"""`enas analyze`: the trained controller against its initial weights and uniform sampling on the same
shared weights, its hidden states and embeddings (Sciuto et al. 2019; "Understanding Neural Architecture
Search", 2019), on a tiny real-PTB enas run; the statistics helpers against hand-computed cases; the
command's one-line errors."""
import contextlib
import json
import math
import shutil

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import enas
from enas.analysis import FILES, analyze, check_run, initial_controller, kendall, mean_interval, spearman, superiority
from enas.analysis.embeddings import dissimilarities, spread
from enas.cli import main
from enas.config import apply_overrides
from enas.controller import Controller
from enas.errors import CheckpointError
from enas.spaces import Subset
from enas.strategies import load_search, preset, start_search
from enas.strategies.enas import Enas

N = 16


@pytest.fixture(scope="module")
def run(ptb_dir, tmp_path_factory):
    """A finished tiny enas search on the real PTB files."""
    cfg = preset("search", "ptb", "tiny")
    cfg.data_dir = str(ptb_dir)
    cfg = apply_overrides(cfg, ["shared_steps=6", "controller.steps=3", "eval_max_batches=2", "log_every=2"])
    path = tmp_path_factory.mktemp("analyze") / "run"
    assert start_search(cfg, path, progress=False).run() is True
    return path


@pytest.fixture(scope="module")
def analysed(run):
    result = analyze(run, samples=N, batches=2, progress=False)
    return result, json.loads((run / "analysis" / "scores.json").read_text())


def test_the_analysis_holds_three_groups_of_n_with_consistent_statistics(run, analysed):
    result, scores = analysed
    assert sorted(p.name for p in (run / "analysis").iterdir()) == sorted(FILES)
    assert json.loads((run / "analysis" / "analysis.json").read_text()) == result
    assert set(result["groups"]) == set(scores) == {"trained", "untrained", "uniform"}
    for group, rows in scores.items():
        stats = result["groups"][group]
        assert len(rows) == stats["n"] == N
        assert stats["distinct"] == len({r["arch"] for r in rows})
        metric = np.array([r["metric"] for r in rows])
        reward = np.array([r["reward"] for r in rows])
        assert np.allclose(reward, 80.0 / metric), "the search's reward: c / ppl"
        assert math.isclose(stats["reward"]["mean"], reward.mean())
        assert math.isclose(stats["metric"]["quantiles"]["50"], np.median(metric))
        q = [stats["metric"]["quantiles"][k] for k in ("5", "25", "50", "75", "95")]
        assert stats["metric"]["min"] <= q[0] <= q[1] <= q[2] <= q[3] <= q[4] <= stats["metric"]["max"]
        assert stats["best"]["reward"] == reward.max()
    wins = result["comparison"]["trained_vs_uniform"]
    assert math.isclose(wins["reward_difference"], result["groups"]["trained"]["reward"]["mean"]
                        - result["groups"]["uniform"]["reward"]["mean"])
    assert 0 <= wins["win_rate"] <= 1
    h = result["hidden_states"]
    assert (h["architectures"], h["steps"], h["hidden_size"]) == (N, 11 + 1, 32)  # 6 nodes: 11 decisions
    assert len(h["step_spread"]["trained"]) == h["steps"] and h["step_spread"]["trained"][0] == 0, \
        "the first decision is made before any token is read"
    assert set(result["embeddings"]["spearman"]) == {"ops", "op_counts", "connections", "tokens"}
    report = (run / "analysis" / "report.md").read_text()
    assert "| trained controller |" in report and "| tokens that differ (Hamming distance) |" in report
    events = EventAccumulator(str(run))
    events.Reload()
    tags = events.Tags()
    assert {"analysis/trained/reward_mean", "analysis/uniform/ppl_median", "analysis/trained_vs_uniform/win_rate",
            "analysis/hidden_spread/trained", "analysis/embedding_spearman/tokens/trained"} <= set(tags["scalars"])
    assert set(tags["images"]) == {"analysis/rewards", "analysis/hidden_states", "analysis/embeddings"}
    assert "analysis/report/text_summary" in tags["tensors"]


def test_scores_are_the_tasks_metric_on_the_shared_weights_and_deterministic(run, analysed):
    result, scores = analysed
    search = load_search(run, progress=False)
    task, supernet = search.engine.task, search.engine.supernet
    arch = enas.Arch.parse(search.space, scores["uniform"][3]["arch"])
    # scored in chunks of architectures at once; alone, batch by batch, it is the same perplexity
    batches = task.reward_batches(2)
    tokens = [b[1].numel() for b in batches]
    logs = [math.log(task.score(supernet, torch.tensor(arch.tokens), b).item()) for b in batches]
    expected = math.exp(sum(lg * n for lg, n in zip(logs, tokens)) / sum(tokens))
    assert len(batches) == 2 and math.isclose(scores["uniform"][3]["metric"], expected, rel_tol=1e-5)
    again = analyze(run, samples=N, batches=2, progress=False)  # the same seed: the same numbers
    assert again == result and json.loads((run / "analysis" / "scores.json").read_text()) == scores


def test_the_untrained_controller_is_the_initial_controller_of_a_fresh_search(run, tmp_path):
    search = load_search(run, progress=False)
    untrained = initial_controller(search).state_dict()
    fresh = Enas(search.cfg, tmp_path, progress=False).policy.controller.state_dict()
    trained = search.policy.controller.state_dict()
    assert untrained.keys() == fresh.keys()
    assert all(torch.equal(untrained[k], fresh[k]) for k in fresh)
    assert not all(torch.equal(untrained[k], trained[k]) for k in trained), "the controller did learn"


@pytest.mark.parametrize("name,anchors", [("enas_rnn", "before"), ("enas_micro", "own_step"), ("enas_macro", "after")])
def test_hidden_states_are_the_sampling_states_and_end_with_the_embedding(name, anchors):
    space = enas.get_space(name, **({"num_blocks": 2} if name == "enas_micro" else
                                    {"num_layers": 3} if name == "enas_macro" else {"num_nodes": 4}))
    torch.manual_seed(0)
    ctrl = Controller(space, hidden_size=8, anchors=anchors, tanh_constant=2.5)
    sample = ctrl.sample(5, generator=torch.Generator().manual_seed(1))
    states = ctrl.hidden_states(sample.tokens)
    assert states.shape == (5, len(space.decisions) + 1, 8)
    assert sorted(ctrl.decision_order) == list(range(len(space.decisions)))
    assert torch.allclose(ctrl.log_prob(sample.tokens).log_prob, sample.log_prob), "log_prob is unchanged"
    # the last column reads every decision: changing the last one changes it, and only it
    last = space.decisions[ctrl.decision_order[-1]]
    position = space.offsets[ctrl.decision_order[-1]]
    changed = sample.tokens.clone()
    changed[:, position] = (changed[:, position] + 1) % (2 if isinstance(last, Subset) else last.num_options)
    other = ctrl.hidden_states(changed)
    assert torch.equal(other[:, :-1], states[:, :-1]) and not torch.allclose(other[:, -1], states[:, -1])


def test_hidden_states_equal_the_states_sample_drew_from(monkeypatch):
    """enas_rnn with anchors "before": one warm-up step (node 0's own), then one step per decision."""
    space = enas.get_space("enas_rnn", num_nodes=4)
    ctrl = Controller(space, hidden_size=8, anchors="before")
    outputs = []
    real_step = ctrl._step
    monkeypatch.setattr(ctrl, "_step", lambda x, state: outputs.append(real_step(x, state)) or outputs[-1])
    tokens = ctrl.sample(3, generator=torch.Generator().manual_seed(0)).tokens
    drawn = torch.stack(outputs[1:], dim=1)                   # [3, D, 8]
    outputs.clear()
    states = ctrl.hidden_states(tokens)
    assert torch.equal(states[:, :-1], drawn)
    assert len(outputs) == 1 + space.num_tokens + 1, "one step more, reading the last decision"
    assert torch.equal(states[:, -1], outputs[-1])


def test_rank_statistics_against_hand_computed_cases():
    assert math.isclose(spearman([1, 2, 3, 4], [1, 3, 2, 4]), 1 - 6 * 2 / (4 * (16 - 1)))  # no ties: 0.8
    # ties: ranks of y are 1, 2, 3.5, 5, 3.5; Pearson of the ranks = 8 / sqrt(10 * 9.5)
    assert math.isclose(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), 8 / math.sqrt(95))
    assert math.isclose(spearman([1, 2, 3], [3, 2, 1]), -1)
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))
    assert superiority([3, 4], [1, 2]) == 1 and superiority([1, 2], [1, 2]) == 0.5 and superiority([1], [1, 2]) == 0.25
    # Kendall: of the 6 pairs of (1,2,3,4) vs (1,3,2,4) one is discordant: (5 - 1) / 6
    assert math.isclose(kendall([1, 2, 3, 4], [1, 3, 2, 4]), 4 / 6)
    assert math.isclose(kendall([1, 2, 3], [3, 2, 1]), -1) and math.isnan(kendall([1, 2], [5, 5]))
    # tau-b with a tie in y: 4 concordant, 1 discordant, 1 of the 6 pairs tied in y: (4 - 1) / sqrt(6 * 5)
    assert math.isclose(kendall([1, 2, 3, 4], [1, 3, 2, 3]), 3 / math.sqrt(30))


def test_mean_interval_is_students_t():
    # 1..5: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764451 (tables): half-width 2.7764451 * sqrt(2.5 / 5)
    ci = mean_interval([1, 2, 3, 4, 5])
    half = 2.7764451052 * math.sqrt(0.5)
    assert ci["mean"] == 3 and ci["n"] == 5
    assert math.isclose(ci["low"], 3 - half, rel_tol=1e-9) and math.isclose(ci["high"], 3 + half, rel_tol=1e-9)
    assert mean_interval([0.7])["low"] is None


def test_dissimilarities_and_spread_by_hand():
    space = enas.get_space("enas_rnn", num_nodes=3)  # tokens: act0 prev1 act1 prev2 act2
    tokens = torch.tensor([[0, 0, 0, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 1, 1]])
    d = dissimilarities(space, tokens)  # pairs (0, 1), (0, 2), (1, 2)
    assert d["ops"].tolist() == [2, 0, 2]           # act0 and act2 differ
    assert d["op_counts"].tolist() == [0, 0, 0]     # both have two tanh and one relu
    assert d["connections"].tolist() == [1, 0, 1]   # node 2 reads node 1 or node 0
    assert d["tokens"].tolist() == [3, 0, 3]
    assert spread(torch.ones(4, 2, 3)) == 0
    assert math.isclose(spread(torch.eye(3)), math.sqrt(2))


def test_a_stopped_analysis_writes_nothing(run, tmp_path, monkeypatch):
    import enas.analysis.groups as groups

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    monkeypatch.setattr(groups, "stop_on_interrupt", lambda: contextlib.nullcontext(True))
    assert analyze(copy, samples=4, batches=1, progress=False) is None
    assert not (copy / "analysis").exists()


def test_the_command_summary_and_json(run, capsys):
    assert main(["analyze", str(run), "--samples", "6", "--batches", "1", "--quiet", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "device: cpu" in err
    assert out.startswith("analyzed enas_rnn on ptb: 6 architectures per group") and "trained against uniform" in out
    assert main(["analyze", str(run), "--samples", "6", "--batches", "1", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((run / "analysis" / "analysis.json").read_text())


def _fake_run(run, path, **config):
    """A run directory with the enas run's checkpoint and its config.json with `config` changed: what
    analyze reads first, so that it refuses before loading anything."""
    header = json.loads((run / "config.json").read_text())
    header["config"].update(config)
    path.mkdir()
    (path / "config.json").write_text(json.dumps(header))
    shutil.copytree(run / "checkpoints", path / "checkpoints")
    return path


@pytest.mark.parametrize("case,args,expected", [
    ("nas", [], "nas search: it has a controller but no shared weights"),
    ("random_scratch", [], "random_scratch search: it has neither a controller nor shared weights"),
    ("random", [], "random search: it has shared weights but no controller"),
    ("no-checkpoint", [], "holds no checkpoints/last.pt"),
    ("missing", [], "holds no run"),
    ("enas", ["--samples", "0"], "--samples must be a whole number in 1..100,000, got 0"),
    ("enas", ["--samples", "100001"], "--samples must be a whole number in 1..100,000, got 100001"),
    ("enas", ["--batches", "0"], "--batches must be a whole number in 1..10,000, got 0"),
    ("enas", ["--samples", "x"], "--samples: invalid int value: 'x'"),
])
def test_command_errors_are_one_line_and_exit_2(run, tmp_path, capsys, case, args, expected):
    configs = {"nas": {"strategy": "nas"}, "random_scratch": {"strategy": "random_scratch"},
               "random": {"strategy": "random"}, "no-checkpoint": {}}
    target = {"enas": run, "missing": tmp_path / "missing"}.get(case)
    target = target or _fake_run(run, tmp_path / case, **configs[case])
    if case == "no-checkpoint":
        shutil.rmtree(target / "checkpoints")
    before = sorted(p.name for p in target.iterdir()) if target.exists() else None
    assert main(["analyze", str(target), "--quiet", *args]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    if case == "missing":
        assert not target.exists(), "no directory made for a run that is not there"
    elif case != "enas":
        assert sorted(p.name for p in target.iterdir() if p.name != ".lock") == before, "nothing written"
        with pytest.raises(CheckpointError):
            check_run(target)


def _other(ptb_dir, tmp_path, name: str, strategy: str = "enas", *overrides: str):
    """A tiny PTB run like `run`'s whose controller never learned (or has none)."""
    cfg = preset("search", "ptb", "tiny", strategy=strategy)
    cfg.data_dir = str(ptb_dir)
    cfg = apply_overrides(cfg, ["shared_steps=6", "eval_max_batches=2", "log_every=2",
                                *(["controller.steps=0"] if strategy == "enas" else []), *overrides])
    assert start_search(cfg, tmp_path / name, progress=False).run() is True
    return tmp_path / name


@pytest.mark.parametrize("strategy,kind", [("enas", "a controller that never learned"),
                                           ("random", "uniform draws (no controller)")])
def test_against_scores_each_run_on_its_own_shared_weights(run, ptb_dir, tmp_path, capsys, strategy, kind):
    other = _other(ptb_dir, tmp_path, "other", strategy)
    assert main(["analyze", str(run), "--against", str(other), "--samples", "6", "--batches", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"against {other}, each on its own shared weights" in out and "against.png" in out
    result = json.loads((run / "analysis" / "analysis.json").read_text())
    a = result["against"]
    assert a["run"] == str(other) and a["architectures_from"] == kind and a["group"]["n"] == 6
    assert 0 <= a["comparison"]["win_rate"] <= 1
    # the other run's architectures, scored on the other run's weights: its own scores, not this run's
    search = load_search(other, progress=False)
    from enas.analysis.against import draw_other
    from enas.analysis.groups import score
    tokens = draw_other(search, 6, result["seed"])
    mine = score(search, {"g": tokens}, 1, progress=False)["g"]
    assert a["group"]["metric"]["mean"] == pytest.approx(float(np.mean(mine)), rel=1e-6)
    report = (run / "analysis" / "report.md").read_text()
    assert "## Against a search whose controller never learned" in report and "Within this run:" in report
    assert (run / "analysis" / "against.png").stat().st_size > 0


def test_against_refuses_a_run_that_cannot_be_compared(run, ptb_dir, tmp_path, capsys):
    learned = run  # its controller was trained
    nodes = _other(ptb_dir, tmp_path, "nodes", "enas", "space_options.num_nodes=3")
    for other, words in ((learned, "learned"), (nodes, "searched space options")):
        assert main(["analyze", str(run), "--against", str(other), "--samples", "4", "--batches", "1",
                     "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --against: ") and "\n" not in err and words in err, err
