"""`enas analyze RUN --standalone K`: shared-weight scores against training from scratch."""
import json
import math
import signal

import pytest

from enas.analysis.standalone import spread_picks
from enas.cli import main
from enas.config import apply_overrides
from enas.errors import ConfigError
from enas.strategies import preset, start_search

from conftest import start_cli, wait_until

STANDALONE = ["--samples", "12", "--batches", "1", "--preset", "tiny", "--quiet", "--device", "cpu",
              "--train-set", "epochs=1", "--train-set", "eval_max_batches=2"]


def _run(ptb_dir, tmp_path, strategy: str):
    cfg = preset("search", "ptb", "tiny", strategy=strategy)
    cfg.data_dir = str(ptb_dir)
    cfg = apply_overrides(cfg, ["shared_steps=6", "eval_max_batches=1", "derive_samples=2",
                                "space_options.num_nodes=3", *(["controller.steps=2"] if strategy == "enas" else [])])
    path = tmp_path / strategy
    assert start_search(cfg, path, progress=False).run() is True
    return path


def _rows(run):
    return [json.loads(line) for line in (run / "analysis" / "standalone.jsonl").read_text().splitlines()]


def test_picks_are_spread_over_the_ranks_and_deterministic():
    scores = [0.5, 0.1, 0.3, 0.2, 0.4, 0.3]
    assert spread_picks(scores, 3) == [1, 2, 0], "lowest, the middle rank, highest"
    assert spread_picks(scores, 6) == [1, 3, 2, 5, 4, 0], "ties in draw order"
    assert spread_picks(scores, 1) == [1]
    with pytest.raises(ConfigError, match="6 distinct architectures"):
        spread_picks(scores, 7)


def test_rank_fidelity_of_a_random_search_with_shared_weights(ptb_dir, tmp_path, capsys):
    run = _run(ptb_dir, tmp_path, "random")
    assert main(["analyze", str(run), "--standalone", "4", *STANDALONE, "--train-set", "max_steps=4",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["architectures"] == 4 and result["trained"] == 4 and result["metric"] == "ppl"
    shared = [r["shared_metric"] for r in result["rows"]]
    assert shared == sorted(shared, reverse=True), "lowest reward (highest perplexity) first"
    assert -1 <= result["kendall"] <= 1 and -1 <= result["spearman"] <= 1
    assert all(r["standalone_metric"] > 1 and r["error"] is None for r in result["rows"])
    assert [r["arch"] for r in _rows(run)] == [r["arch"] for r in result["rows"]]
    assert (run / "analysis" / "rank_fidelity.png").stat().st_size > 0
    assert json.loads((run / "analysis" / "rank_fidelity.json").read_text())["kendall"] == result["kendall"]
    # analysed again: the same draw and picks, nothing trained again
    assert main(["analyze", str(run), "--standalone", "4", *STANDALONE, "--train-set", "max_steps=4",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == result["rows"] and len(_rows(run)) == 4
    # another recipe: the same picks, each trained again with it
    assert main(["analyze", str(run), "--standalone", "4", *STANDALONE, "--train-set", "max_steps=5",
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [r["arch"] for r in again["rows"]] == [r["arch"] for r in result["rows"]]
    assert again["train_set"][-1] == "max_steps=5" and len(_rows(run)) == 8


def test_a_stopped_standalone_analysis_resumes_without_training_a_finished_child(ptb_dir, tmp_path, capsys):
    run = _run(ptb_dir, tmp_path, "enas")
    args = ["analyze", str(run), "--standalone", "3", *STANDALONE, "--train-set", "max_steps=60"]
    proc = start_cli(*args)
    wait_until(proc, lambda: (run / "analysis" / "standalone.jsonl").exists(), timeout=300)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "analyze again to train the rest" in err.splitlines()[-1]
    first = _rows(run)
    assert 1 <= len(first) < 3 and not (run / "analysis" / "rank_fidelity.json").exists()

    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = _rows(run)
    assert rows[:len(first)] == first and len(rows) == 3, "each architecture trained once"
    assert {r["arch"] for r in rows} == {r["arch"] for r in result["rows"]}
    assert math.isfinite(result["kendall"])


def test_standalone_needs_shared_weights(nas_cfg, tmp_path, capsys):
    run = tmp_path / "nas"
    assert start_search(nas_cfg, run, progress=False).run() is True
    assert main(["analyze", str(run), "--standalone", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "no shared weights" in err
    assert main(["analyze", str(run), "--standalone", "2", "--against", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --standalone measures rank fidelity and --against compares "
                                               "controllers: give one")
    assert not (run / "analysis").exists()
