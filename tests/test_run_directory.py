"""The run directory under signals, kills and concurrent commands.

SIGTERM (Slurm, Kubernetes, `docker stop`, systemd, `timeout`) and Ctrl-C stop every command in order:
exit 143 / 130 with a checkpoint, and --resume finishes with every unit in archs.jsonl once. A kill at
any moment loses at most the unit in progress. One command writes a run directory at a time.
"""
import json
import os
import signal

import pytest
import torch

import enas.strategies.pool
from enas import rundir
from enas.cli import main
from enas.interrupt import stop_on_interrupt
from enas.strategies import resume_search, start_search
from enas.strategies.enas import Enas

from conftest import run_cli, start_cli, wait_until

SHARED = ["--set", "shared_steps=30", "--set", "epochs=1", "--set", "log_every=1",
          "--set", "eval_max_batches=2", "--set", "space_options.num_nodes=3"]
CONTROLLER = ["--set", "controller.steps=3"]
CHILD = ["--set", "child_max_steps=20", "--set", "eval_max_batches=2", "--set", "space_options.num_nodes=3"]
CHILDREN = 4  # in two batches of two
NAS = ["--strategy", "nas", "--set", "nas.updates=2", "--set", "controller.num_aggregate=2", *CHILD]
RANDOM_SCRATCH = ["--strategy", "random_scratch", "--set", "random_scratch.children=4", "--set",
                  "random_scratch.batch=2", *CHILD]
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}


def _rows(run) -> list[dict]:
    path = run / "archs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _search(ptb_dir, run, *args) -> list[str]:
    return ["search", "--data-dir", str(ptb_dir), "--preset", "tiny", "--logdir", str(run), *args]


def test_a_nested_stop_is_seen_by_every_level_and_a_second_signal_stops_at_once():
    with stop_on_interrupt() as outer:
        with stop_on_interrupt() as inner:  # a full-NAS child trained inside a search
            assert inner is outer
            signal.raise_signal(signal.SIGTERM)
        assert outer and outer.exit_status == 143
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a pool worker: the owner's choice stays
    try:
        with stop_on_interrupt() as flag:
            signal.raise_signal(signal.SIGINT)
            assert not flag and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("case,signum", [("enas", signal.SIGTERM), ("enas", signal.SIGINT),
                                         ("random", signal.SIGINT), ("darts", signal.SIGTERM)])
def test_a_weight_sharing_search_stops_saves_and_resumes(case, signum, ptb_dir, tmp_path):
    run = tmp_path / case
    space = ["--space", "darts_rnn"] if case == "darts" else []
    args = _search(ptb_dir, run, "--strategy", case, *space, *SHARED, *(CONTROLLER if case == "enas" else []))
    proc = start_cli(*args, "--quiet")
    wait_until(proc, lambda: list(run.glob("events.out.tfevents.*")))  # shared steps are being logged
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == STATUS[signum], err
    assert "--resume" in err.splitlines()[-1]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["shared_step"] < 30, "stopped early"

    assert main([*args, "--resume", "--quiet"]) == 0  # in process from here on: the same code, without the start-up
    steps = [r["step"] for r in _rows(run) if r["phase"] == "controller"]
    if case == "enas":  # 3 controller updates of num_aggregate (tiny: 2) rewards each, once each
        assert steps == [1, 1, 2, 2, 3, 3]
    else:
        assert steps == [], "random search and DARTS train no controller"


@pytest.mark.parametrize("case,signum", [
    ("nas", signal.SIGINT), ("nas", signal.SIGTERM), ("random_scratch", signal.SIGINT),
    ("random_scratch", signal.SIGTERM), ("nas", signal.SIGKILL)])
def test_a_search_without_sharing_abandons_the_child_in_training(case, signum, ptb_dir, tmp_path, capsys):
    run = tmp_path / case
    args = _search(ptb_dir, run, *(NAS if case == "nas" else RANDOM_SCRATCH))
    proc = start_cli(*args, "--quiet")
    wait_until(proc, lambda: _rows(run))  # one child recorded, the next one training
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == STATUS[signum], err

    before = _rows(run)
    assert 1 <= len(before) < CHILDREN
    # a child cut short is not recorded: no floor reward without an error, and never the best
    assert all(r["error"] is None and r["reward"] > 0 for r in before), before
    if signum != signal.SIGKILL:
        state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert len(state["pending"]["rewards"]) + state["children"] == len(before)
        assert json.loads((run / "arch.json").read_text())["reward"] == max(r["reward"] for r in before)

    assert main([*args, "--resume"]) == 0
    after = _rows(run)
    assert [r["child"] for r in after] == list(range(CHILDREN)), "every child recorded once"
    assert all(r["error"] is None for r in after)
    kept = [r for r in after if r in before]  # a kill may come between a record and its checkpoint
    assert kept == before if signum != signal.SIGKILL else len(kept) >= len(before) - 1
    trained = [line for line in capsys.readouterr().err.splitlines() if line.startswith("child ")]
    assert len(trained) == CHILDREN - len(kept), "the recorded children are not trained again"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_worker_processes_stopped_with_the_whole_process_group_are_not_failed_children(signum, ptb_dir, tmp_path):
    """Ctrl-C in a terminal and SIGTERM from Slurm or `timeout` reach the workers too."""
    run = tmp_path / "pool"
    args = _search(ptb_dir, run, *NAS)
    proc = start_cli(*args, "--workers", "2", "--quiet", start_new_session=True)
    wait_until(proc, lambda: _rows(run))
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == STATUS[signum], err
    assert all(r["error"] is None for r in _rows(run)), _rows(run)
    assert main([*args, "--resume", "--quiet"]) == 0  # in this process: the worker count is not the run's
    assert sorted(r["child"] for r in _rows(run)) == list(range(CHILDREN))  # finished in any order
    assert all(r["error"] is None for r in _rows(run))


def test_a_kill_between_a_record_and_its_checkpoint_leaves_no_duplicate(nas_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = enas.strategies.pool.ckpt.save_checkpoint

    def killed_after_the_second_record(path, state):
        if len(_rows(run)) == 2:
            raise KeyboardInterrupt  # as if the process died here: archs.jsonl has a row the checkpoint lacks
        real(path, state)

    monkeypatch.setattr(enas.strategies.pool.ckpt, "save_checkpoint", killed_after_the_second_record)
    with pytest.raises(KeyboardInterrupt):
        start_search(nas_cfg, run, progress=False).run()
    monkeypatch.undo()
    assert resume_search(run, progress=False).run() is True
    assert [r["child"] for r in _rows(run)] == list(range(4))


def test_train_stops_saves_and_resumes(ptb_dir, tmp_path, capsys):
    run = tmp_path / "final"
    args = ["train", "--arch", "enas_ptb", "--data-dir", str(ptb_dir), "--preset", "tiny", "--logdir", str(run),
            "--set", "max_steps=60", "--set", "epochs=2", "--set", "log_every=1", "--set", "eval_max_batches=2"]
    proc = start_cli(*args, "--quiet")
    wait_until(proc, lambda: list(run.glob("events.out.tfevents.*")))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["global_step"] < 120
    assert not (run / "results.json").exists()
    assert main([*args, "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 120


def test_compare_stops_after_saving_and_resumes(ptb_dir, tmp_path, capsys):
    root = tmp_path / "cmp"
    args = ["compare", "--data-dir", str(ptb_dir), "--budget", "6", "--seeds", "2", "--logdir", str(root),
            "--quiet", "--strategies", "random,enas", "--set", "space_options.num_nodes=3",
            "--set", "eval_max_batches=1", "--set", "derive_samples=2", "--train-set", "max_steps=40",
            "--train-set", "epochs=2", "--train-set", "eval_max_batches=1", "--train-set", "log_every=1"]
    proc = start_cli(*args)
    final = root / "random" / "seed1" / "final"
    wait_until(proc, lambda: list(final.glob("events.out.tfevents.*")))  # seed 0 done, seed 1 training
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err.splitlines()[-1]
    assert (root / "random" / "seed0" / "entrant.json").exists() and not (root / "comparison.md").exists()
    done = (root / "random" / "seed0" / "entrant.json").read_text()
    assert main(args) == 2 and "continue it with --resume" in capsys.readouterr().err
    assert main([*args, "--resume", "--budget", "7"]) == 2
    assert capsys.readouterr().err.strip().endswith("ran with budget 6.0, not 7.0; resume it with the same arguments")

    assert main([*args, "--resume"]) == 0
    assert (root / "random" / "seed0" / "entrant.json").read_text() == done, "a finished entrant is not run again"
    results = json.loads((final / "results.json").read_text())
    assert results["steps"] == 80, "the stopped final training continued to its end"
    rows = json.loads((root / "comparison.json").read_text())
    shared = "random (shared weights)"
    assert [(r["strategy"], r["seed"]) for r in rows] == [(shared, 0), (shared, 1), ("enas", 0), ("enas", 1)]
    table = (root / "comparison.md").read_text()
    assert "| random (shared weights) - enas |" in table and "[" in table


@pytest.fixture
def searched(tiny_search_cfg, tmp_path):
    run = tmp_path / "searched"
    Enas.start(tiny_search_cfg, run, progress=False).run()
    return run


def test_derive_stopped_writes_nothing(searched):
    proc = start_cli("derive", str(searched), "--samples", "1000", "--quiet")
    lock = searched / rundir.LOCK_FILE
    wait_until(proc, lambda: lock.exists() and lock.read_text().strip() == str(proc.pid))  # handler installed
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert not (searched / "arch.json").exists() and not [r for r in _rows(searched) if r["phase"] == "derive"]
    assert main(["derive", str(searched), "--quiet"]) == 0
    assert main(["derive", str(searched), "--quiet"]) == 0  # again: its rows replace the first derive's
    assert len([r for r in _rows(searched) if r["phase"] == "derive"]) == 4  # derive_samples


def test_a_second_command_on_a_run_directory_names_the_first(searched, capsys):
    with rundir.locked(searched):  # this process is the first command
        r = run_cli("derive", str(searched))
        assert r.returncode == 2
        assert r.stderr.strip() == f"error: {searched} is in use by another process (pid {os.getpid()}); " \
                                   f"wait for it to end or stop it"
        assert main(["search", "--resume", "--logdir", str(searched)]) == 2
        assert f"(pid {os.getpid()})" in capsys.readouterr().err
    assert not (searched / "arch.json").exists()
    assert main(["derive", str(searched), "--quiet"]) == 0  # released


def test_a_new_run_refuses_a_directory_holding_one_unless_overwrite(ptb_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "archs.jsonl").write_text('{"step": 9, "arch": "old"}\n')
    (run / "notes.txt").write_text("mine")
    args = _search(ptb_dir, run, *SHARED, "--set", "shared_steps=2", "--set", "controller.steps=1", "--quiet")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "(archs.jsonl)" in err and "--overwrite" in err
    assert main([*args, "--resume", "--overwrite"]) == 2
    assert main(["train", "--arch", "enas_ptb", "--logdir", str(run), "--preset", "tiny"]) == 2
    assert main(["compare", "--budget", "1", "--logdir", str(run)]) == 2
    assert "start it over with --overwrite" in capsys.readouterr().err
    assert (run / "archs.jsonl").read_text() == '{"step": 9, "arch": "old"}\n'

    assert main([*args, "--overwrite"]) == 0
    assert all(r["arch"] != "old" for r in _rows(run)) and (run / "notes.txt").read_text() == "mine"


def test_leftovers_of_killed_saves_are_removed_at_the_next_start(searched):
    partial = [searched / ".arch.json.0123456789abcdef.tmp", searched / "checkpoints" / ".last.pt.fedcba9876543210.tmp"]
    for path in partial:
        path.write_bytes(b"half a file")
    (searched / ".notes.tmp").write_text("not ours")
    assert main(["derive", str(searched), "--quiet"]) == 0
    assert not any(path.exists() for path in partial) and (searched / ".notes.tmp").exists()
