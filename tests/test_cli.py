"""The command line as a user meets it: the README's main job, and one-line errors with exit 2."""
import json
import shutil

import pytest

from enas.cli import main

from conftest import run_cli

FAST = ["--set", "shared_steps=6", "--set", "controller.steps=2", "--set", "eval_max_batches=2",
        "--set", "derive_samples=3"]


def test_search_derive_train(ptb_dir, tmp_path):
    run, final = tmp_path / "ptb", tmp_path / "final"
    r = run_cli("search", "--space", "enas_rnn", "--task", "ptb", "--data-dir", str(ptb_dir),
                "--logdir", str(run), "--preset", "tiny", *FAST)
    assert r.returncode == 0, r.stderr
    r = run_cli("derive", str(run))
    assert r.returncode == 0, r.stderr
    derived = json.loads((run / "arch.json").read_text())
    assert set(derived) >= {"space", "arch", "metric", "how"}
    r = run_cli("train", "--space", "enas_rnn", "--task", "ptb", "--arch", str(run / "arch.json"),
                "--data-dir", str(ptb_dir), "--logdir", str(final), "--preset", "tiny",
                "--set", "max_steps=5", "--set", "eval_max_batches=2")
    assert r.returncode == 0, r.stderr
    assert "parameters" in r.stdout
    result = json.loads((final / "results.json").read_text())
    assert result["arch"] == derived["arch"] and 1 < result["valid_ppl"] < 10000 and 1 < result["test_ppl"] < 10000


def test_train_takes_a_zoo_name_and_an_arc_string(ptb_dir, tmp_path):
    for arch in ("enas_ptb", "0 0 0 1 1"):  # the official cell; a 3-node cell
        r = run_cli("train", "--space", "enas_rnn", "--arch", arch, "--data-dir", str(ptb_dir),
                    "--logdir", str(tmp_path / arch.replace(" ", "")), "--preset", "tiny",
                    "--set", "max_steps=2", "--set", "eval_max_batches=1")
        assert r.returncode == 0, r.stderr
        assert json.loads((tmp_path / arch.replace(" ", "") / "results.json").read_text())["steps"] == 2


def test_spaces_lists_the_registry():
    r = run_cli("spaces")
    assert r.returncode == 0 and "enas_rnn" in r.stdout and "node11.act" in r.stdout


def _corrupt_copy(ptb_dir, tmp_path):
    bad = tmp_path / "bad-ptb"
    shutil.copytree(ptb_dir, bad)
    with open(bad / "ptb.valid.txt", "r+b") as f:
        f.seek(1000)
        f.write(b"X")
    return bad


@pytest.mark.parametrize("case", ["missing data", "corrupt data", "unknown key", "bad value", "bad preset",
                                  "bad arc", "bad arc value", "missing arch file", "bad space",
                                  "no checkpoint", "derive no run", "bad strategy"])
def test_user_errors_are_one_line_and_exit_2(case, ptb_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    search = ["search", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny"]
    train = ["train", "--space", "enas_rnn", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny"]
    args = {
        "missing data": ["search", "--data-dir", str(tmp_path / "nowhere"), "--logdir", str(run), "--preset",
                         "tiny", "--set", "device=cpu"],
        "corrupt data": ["search", "--data-dir", str(_corrupt_copy(ptb_dir, tmp_path)), "--logdir", str(run),
                         "--preset", "tiny"],
        "unknown key": search + ["--set", "controller.learning_rate=1"],
        "bad value": search + ["--set", "seed=seven"],
        "bad preset": search[:-1] + ["huge"],
        "bad arc": train + ["--arch", "0 0 x 1"],
        "bad arc value": train + ["--arch", "0 0 0 1 7"],
        "missing arch file": train + ["--arch", str(tmp_path / "arch.json")],
        "bad space": ["search", "--space", "nope", "--data-dir", str(ptb_dir), "--logdir", str(run)],
        "no checkpoint": search + ["--resume"],
        "derive no run": ["derive", str(tmp_path)],
        "bad strategy": search + ["--strategy", "evolution"],
    }[case]
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENAS_PTB_URL", (tmp_path / "no-mirror").as_uri())
    code = main(args)  # in process: the same code path as the console script, without the start-up
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not (run / "checkpoints").exists(), "a failed start leaves no half-written run"


def test_an_existing_run_is_not_overwritten(ptb_dir, tmp_path):
    run = tmp_path / "run"
    args = ["search", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny", *FAST,
            "--set", "epochs=1"]
    assert run_cli(*args).returncode == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    r = run_cli(*args)  # the console script's own exit status and stderr
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "--resume" in r.stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
