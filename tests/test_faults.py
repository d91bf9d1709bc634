"""Faults a run directory survives: divergence, bad input, untrusted or damaged files, a full disk and
SIGKILL at any moment.

Every user error is one line `error: ...` with exit status 2, no traceback, and leaves what was
already written as it was. A search killed at a random moment and resumed ends where an uninterrupted
one does, with every unit in archs.jsonl once.
"""
import errno
import json
import math
import os
import pathlib
import random
import shutil
import signal
import time

import pytest
import torch

import enas.checkpoint
import enas.rundir
from enas import child_training
from enas.cli import main
from enas.tasks.ptb import PTBTask, perplexity

from conftest import start_cli, wait_until
from test_run_directory import NAS, _rows, _search

ENAS = ["--set", "shared_steps=6", "--set", "controller.steps=2", "--set", "eval_max_batches=2",
        "--set", "derive_samples=2", "--set", "log_every=2", "--set", "space_options.num_nodes=4"]


def _fails(capsys, args: list[str], *fragments: str) -> str:
    """Run the command in process: exit 2 and one line `error: ...` (the last of stderr), no traceback."""
    code = main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _files(run: pathlib.Path) -> dict:
    """Every file of a run and its bytes (the lock file, which names the last holder, aside)."""
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and not p.is_symlink() and p.name != ".lock"}


def _state(run: pathlib.Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def _edit_checkpoint(run: pathlib.Path, edit) -> None:
    state = _state(run)
    edit(state)
    torch.save(state, run / "checkpoints" / "last.pt")


def _edit_config(run: pathlib.Path, edit) -> None:
    header = json.loads((run / "config.json").read_text())
    edit(header)
    (run / "config.json").write_text(json.dumps(header))


# --- finished runs to damage, each made once and copied per test --------------------------------------

@pytest.fixture(scope="module")
def made(ptb_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("made")
    runs = {"enas": _search(ptb_dir, root / "enas", "--set", "epochs=1", *ENAS, "--quiet"),
            "nas": _search(ptb_dir, root / "nas", "--strategy", "nas", *NAS, "--set", "nas.updates=1",
                           "--set", "child_max_steps=3", "--quiet"),
            "train": ["train", "--arch", "enas_ptb", "--data-dir", str(ptb_dir), "--preset", "tiny", "--logdir",
                      str(root / "train"), "--set", "max_steps=3", "--set", "eval_max_batches=1", "--quiet"]}
    for args in runs.values():
        assert main(args) == 0
    return root, runs


@pytest.fixture
def run_of(made, tmp_path):
    """(copy of a made run, its command line pointed at the copy)."""
    root, runs = made

    def copy(kind: str):
        run = tmp_path / kind
        shutil.copytree(root / kind, run, symlinks=True)
        return run, [str(run) if a == str(root / kind) else a for a in runs[kind]]
    return copy


# --- divergence ------------------------------------------------------------------------------------

def test_perplexity_and_reward_of_a_diverged_model_are_inf_and_zero():
    assert perplexity(4.0) == pytest.approx(math.exp(4.0))
    assert perplexity(710.0) == math.inf and perplexity(math.nan) == math.inf and perplexity(math.inf) == math.inf
    task = PTBTask.__new__(PTBTask)
    task.reward_c = 80.0
    assert task.reward(torch.tensor([math.inf, math.nan, 80.0])).tolist() == [0.0, 0.0, 1.0]

    class NaNModel(torch.nn.Module):
        def forward(self, x, hidden, arch=None):
            return torch.full((*x.shape, 5), math.nan), hidden
    batch = (torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    assert task.score(NaNModel(), torch.zeros(1), batch).item() == math.inf


def test_a_diverging_search_derive_and_training_finish_with_inf_never_nan(ptb_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_search(ptb_dir, run, "--set", "epochs=1", *ENAS, "--set", "shared.lr=1e9", "--quiet")) == 0
    assert main(["derive", str(run), "--quiet"]) == 0
    final = tmp_path / "final"
    assert main(["train", "--arch", str(run / "arch.json"), "--data-dir", str(ptb_dir), "--preset", "tiny",
                 "--logdir", str(final), "--set", "optim.lr=1e9", "--set", "max_steps=6", "--set",
                 "eval_max_batches=2", "--quiet"]) == 0
    capsys.readouterr()
    for path in (run / "arch.json", final / "results.json", run / "archs.jsonl"):
        assert "NaN" not in path.read_text(), path
    derived = json.loads((run / "arch.json").read_text())
    assert derived["metric"] > 1  # inf once the weights have diverged
    assert all(r["reward"] >= 0 and not math.isnan(r["metric"]) for r in _rows(run))


def test_diverged_children_of_full_nas_get_reward_0_and_no_nan(ptb_dir, tmp_path, monkeypatch, capsys):
    ppl = iter([math.nan, 1e200])  # the square of 1e200 overflows a float
    monkeypatch.setattr(child_training, "train_child", lambda payload: {
        "metrics": [next(ppl)], "metric": "ppl", "seconds": 0.1, "parameters": 1})
    run = tmp_path / "run"
    assert main(_search(ptb_dir, run, "--strategy", "nas", *NAS, "--set", "nas.updates=1", "--quiet")) == 0
    capsys.readouterr()
    rows = _rows(run)
    assert [r["reward"] for r in rows] == [0.0, 0.0] and [r["metric"] for r in rows] == [math.inf, 1e200]
    assert "NaN" not in (run / "archs.jsonl").read_text() + (run / "arch.json").read_text()


def test_a_shared_loss_that_stays_non_finite_stops_after_saving(ptb_dir, tmp_path, capsys):
    run = tmp_path / "run"
    # weights of 1e30 overflow the cell: the steps' losses or gradients are not finite (a cell whose
    # nodes all saturate to 0 or 1 can keep a finite output, so a window may hold a step that counts)
    error = _fails(capsys, _search(ptb_dir, run, *ENAS, "--set", "model.init_range=1e30", "--quiet"),
                   "error: the shared loss is not finite since step ", "lower shared.lr", "--resume")
    first = int(error.split("since step ")[1].split()[0])
    state = _state(run)
    # it stopped at the end of that log window (log_every 2), every step of which was skipped
    assert first % 2 == 1 and state["shared_step"] == first + 1 and int(state["skipped"]) >= 2
    assert all(torch.isfinite(v).all() for v in state["supernet"].values()), "no non-finite step was applied"


# --- checks before work ----------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", [["--strategy", "nas"], ["--strategy", "random_scratch"]])
def test_a_search_without_sharing_checks_its_data_before_the_first_child(strategy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENAS_PTB_URL", (tmp_path / "no-mirror").as_uri())
    run = tmp_path / "run"
    _fails(capsys, ["search", "--data-dir", str(tmp_path / "nowhere"), "--logdir", str(run), "--preset", "tiny",
                    *strategy, "--quiet"], "PTB file(s)", "not found")
    assert _files(run) == {}, "nothing written"


def test_a_search_whose_every_child_failed_does_not_claim_success(ptb_dir, tmp_path, monkeypatch, capsys):
    def broken(payload):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(child_training, "train_child", broken)
    run = tmp_path / "run"
    _fails(capsys, _search(ptb_dir, run, "--strategy", "nas", *NAS, "--set", "nas.updates=1", "--quiet"),
           "none of the 2 children finished without an error", "device-side assert", "archs.jsonl")
    assert not (run / "arch.json").exists() and len(_rows(run)) == 2


# --- untrusted run directories ---------------------------------------------------------------------

def test_where_code_runs_never_comes_from_the_run_directory(run_of, capsys):
    run, args = run_of("nas")
    elsewhere = {"executor": "ray", "ray_address": "ray://203.0.113.7:10001", "workers": 64, "device": "cuda:7"}
    _edit_config(run, lambda header: header["config"].update(elsewhere))
    _edit_checkpoint(run, lambda state: state["config"].update(elsewhere))
    assert main([*args, "--resume", "--device", "cpu", "--set", "nas.updates=2"]) == 0  # one update more
    err = capsys.readouterr().err
    assert "device: cpu; children train on the local executor (1 worker)" in err.splitlines(), err
    recorded = json.loads((run / "config.json").read_text())["config"]
    assert (recorded["executor"], recorded["ray_address"], recorded["workers"]) == ("local", "", 1)


def test_a_checkpoint_that_asks_to_load_code_is_refused_unrun(run_of, tmp_path, capsys):
    run, args = run_of("enas")
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    _edit_checkpoint(run, lambda state: state.update(supernet=Payload()))
    before = _files(run)
    line = _fails(capsys, [*args, "--resume"], "refused: it asks to load posix.system")
    assert "corrupt" not in line and not marker.exists()
    assert _fails(capsys, ["derive", str(run)], "refused: it asks to load") and not marker.exists()
    assert _files(run) == before


@pytest.mark.parametrize("link", ["archs.jsonl", "checkpoints/last.pt"])
def test_files_of_a_run_are_never_written_through_a_symbolic_link(link, run_of, tmp_path, capsys):
    run, args = run_of("enas")
    target = tmp_path / "elsewhere"
    shutil.move(run / link, target)
    (run / link).symlink_to(target)
    before = target.read_bytes()
    _fails(capsys, [*args, "--resume", "--set", "epochs=2"], f"{run / link} is a symbolic link")
    _fails(capsys, ["derive", str(run)], "is a symbolic link")
    assert target.read_bytes() == before and (run / link).is_symlink()


# --- one line for every user error -----------------------------------------------------------------

RESUME_ERRORS = {
    "hidden size": (["--set", "model.hidden_size=64"], None, "model.hidden_size cannot change"),
    "nodes": (["--set", "space_options.num_nodes=5"], None, "space_options.num_nodes cannot change"),
    "controller size": (["--set", "controller.hidden_size=16"], None, "controller.hidden_size cannot change"),
    "batch size": (["--set", "batch_size=8"], None, "batch_size cannot change"),
    "missing key": ([], lambda run: _edit_checkpoint(run, lambda s: s.pop("shared_opt")),
                    "lacks the entry 'shared_opt'"),
    "config not a dict": ([], lambda run: _edit_checkpoint(run, lambda s: s.update(config=[1])), "holds no config"),
    "config.json list": ([], lambda run: (run / "config.json").write_text('{"config": []}'), "holds no config"),
    "strategy edited": ([], lambda run: _edit_config(run, lambda h: h["config"].update(strategy="nas")),
                        "differ in strategy"),
    "config disagrees": ([], lambda run: _edit_checkpoint(run, lambda s: s["config"]["model"].update(hidden_size=64)),
                         "does not belong to"),
    "another version's run": ([], lambda run: _as_an_older_version(run), "does not fit this version of enas"),
    "row is a list": ([], lambda run: _insert_row(run, b"[1, 2]\n"), "line 1 is not an architecture record"),
    "row not utf-8": ([], lambda run: _insert_row(run, b'{"step": 1, "arch": "\xff\xfe"}\n'), "is not UTF-8 text"),
    "string step": ([], lambda run: _insert_row(run, b'{"step": "3", "arch": "0"}\n'), "line 1 is not an architecture"),
}


def _as_an_older_version(run: pathlib.Path) -> None:
    """The run as a version that kept the controller at the top level of the config wrote it."""
    def flatten(config: dict) -> None:
        config["controller"] = config.pop("enas")["controller"]
    _edit_config(run, lambda header: flatten(header["config"]))
    _edit_checkpoint(run, lambda state: flatten(state["config"]))


def _insert_row(run: pathlib.Path, line: bytes) -> None:
    path = run / "archs.jsonl"
    path.write_bytes(line + path.read_bytes())


@pytest.mark.parametrize("case", list(RESUME_ERRORS))
def test_a_resume_that_cannot_be_is_one_line_and_changes_nothing(case, run_of, capsys):
    sets, damage, message = RESUME_ERRORS[case]
    run, args = run_of("enas")
    if damage:
        damage(run)
    before = _files(run)
    _fails(capsys, [*args, "--resume", *sets], message)
    assert _files(run) == before


def test_a_training_resume_with_another_size_is_refused(run_of, capsys):
    run, args = run_of("train")
    before = _files(run)
    _fails(capsys, [*args, "--resume", "--set", "model.hidden_size=64"], "model.hidden_size cannot change")
    assert _files(run) == before


@pytest.mark.parametrize("case", ["not utf-8", "300 MB", "fifo", "directory", "a list", "million nodes"])
def test_a_bad_arch_is_one_line(case, ptb_dir, tmp_path, capsys):
    path = tmp_path / "arch.json"
    message = {"not utf-8": "is not UTF-8 text", "300 MB": "314,572,800 bytes", "fifo": "not a regular file",
               "directory": "is a directory", "a list": "is not an architecture JSON",
               "million nodes": "num_nodes must be a whole number in 1..64"}[case]
    if case == "not utf-8":
        path.write_bytes(b'{"space": "enas_rnn", "arch": "0 \xff"}')
    elif case == "300 MB":
        with open(path, "wb") as f:
            f.truncate(300 * 2**20)  # sparse: nothing is written
    elif case == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer forever
    elif case == "directory":
        path.mkdir()
    elif case == "a list":
        path.write_text("[]")
    else:
        path.write_text(json.dumps({"space": "enas_rnn", "options": {"num_nodes": 10**6}, "arch": "0"}))
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail("reading --arch blocked"))
    signal.alarm(30)
    try:
        _fails(capsys, ["train", "--arch", str(path), "--data-dir", str(ptb_dir), "--logdir", str(tmp_path / "run"),
                        "--preset", "tiny"], message)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not (tmp_path / "run" / "config.json").exists()


def test_an_arc_string_of_too_many_nodes_is_one_line(ptb_dir, tmp_path, capsys):
    _fails(capsys, ["train", "--space", "enas_rnn", "--arch", " ".join(["0"] * 401), "--data-dir", str(ptb_dir),
                    "--logdir", str(tmp_path / "run"), "--preset", "tiny"], "num_nodes must be a whole number in 1..64")


@pytest.mark.parametrize("case", ["read-only", "a file", "empty"])
def test_a_logdir_that_cannot_be_written_is_one_line(case, ptb_dir, tmp_path, monkeypatch, capsys):
    logdir = tmp_path / "run"
    if case == "read-only":
        logdir.mkdir()
        if os.geteuid() == 0:  # root writes anywhere: refuse as a read-only file system would
            real = os.open

            def read_only(path, *args, **kwargs):
                if str(path).startswith(str(logdir)):
                    raise OSError(errno.EROFS, "Read-only file system", str(path))
                return real(path, *args, **kwargs)

            monkeypatch.setattr(enas.rundir.os, "open", read_only)
        else:
            logdir.chmod(0o555)
        message = f"cannot write the run directory {logdir}"
    elif case == "a file":
        logdir.write_text("notes")
        message = f"{logdir} is not a directory"
    else:
        logdir, message = pathlib.Path(""), "--logdir is empty"
    args = ["search" if case != "empty" else "train", "--data-dir", str(ptb_dir), "--preset", "tiny",
            "--logdir", str(logdir) if case != "empty" else ""]
    _fails(capsys, args + (["--arch", "enas_ptb"] if case == "empty" else []), message)
    if case == "a file":
        assert logdir.read_text() == "notes"


def test_an_unreadable_data_file_is_one_line(ptb_dir, tmp_path, monkeypatch, capsys):
    real = pathlib.Path.read_bytes

    def read_bytes(self):
        if self.name == "ptb.valid.txt":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    _fails(capsys, _search(ptb_dir, tmp_path / "run", "--quiet"), "cannot read the data file",
           "ptb.valid.txt: Permission denied")


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(run_of, monkeypatch, capsys):
    run, args = run_of("enas")
    before = (run / "checkpoints" / "last.pt").read_bytes()
    real = torch.save

    class Full:  # a file on a disk that fills up after 4 kB
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def flush(self):
            self.f.flush()

    monkeypatch.setattr(torch, "save", lambda obj, f: real(obj, Full(f)))
    _fails(capsys, [*args, "--resume", "--set", "epochs=2"],
           f"no space left on device while writing {run / 'checkpoints' / 'last.pt'}")
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in run.rglob("*.tmp")], "no half-written file left"
    monkeypatch.undo()
    assert main([*args, "--resume", "--set", "epochs=2"]) == 0  # space freed: it continues


@pytest.mark.parametrize("pair,message", [
    (f"seed={2**90}", "seed must be in 0 .. 4294967295"),
    ("log_every=0", "log_every must be >= 1"),
    ("controller.num_aggregate=0", "controller.num_aggregate must be >= 1"),
    ("shared.lr=0", "shared.lr must be > 0"),
    ("controller.lr=inf", "must be a finite number"),
    ("space_options.num_nodes=65", "num_nodes must be a whole number in 1..64"),
])
def test_absurd_settings_are_refused_before_anything_is_written(pair, message, ptb_dir, tmp_path, capsys):
    run = tmp_path / "run"
    _fails(capsys, _search(ptb_dir, run, "--set", pair, "--quiet"), message)
    assert _files(run) == {}


@pytest.mark.parametrize("samples", ["0", "100001", "-3"])
def test_derive_samples_out_of_range_is_one_line(samples, run_of, capsys):
    run, _ = run_of("enas")
    before = _files(run)
    _fails(capsys, ["derive", str(run), "--samples", samples], "--samples must be a whole number in 1..100,000")
    assert _files(run) == before


# --- full NAS resume -------------------------------------------------------------------------------

def test_a_child_recorded_before_a_kill_is_neither_trained_again_nor_duplicated(ptb_dir, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    args = _search(ptb_dir, run, "--strategy", "nas", *NAS, "--quiet")
    trained = []
    real_train, real_save = child_training.train_child, enas.checkpoint.save_checkpoint
    monkeypatch.setattr(child_training, "train_child", lambda payload: trained.append(1) or real_train(payload))

    def killed_after_the_third_record(path, state):
        if len(_rows(run)) == 3:
            raise KeyboardInterrupt  # as SIGKILL would: archs.jsonl has a row the checkpoint lacks
        real_save(path, state)

    monkeypatch.setattr(enas.checkpoint, "save_checkpoint", killed_after_the_third_record)
    assert main(args) == 130
    monkeypatch.setattr(enas.checkpoint, "save_checkpoint", real_save)
    assert main([*args, "--resume"]) == 0
    assert len(trained) == 4, "the third child, recorded before the kill, was not trained again"
    assert [r["child"] for r in _rows(run)] == [0, 1, 2, 3]
    events = EventAccumulator(str(run))
    events.Reload()
    assert [e.step for e in events.Scalars("child/reward_mean")] == [1, 2], "no TensorBoard step twice"


def _kill_at_random(args: list[str], run: pathlib.Path, fractions: list[float]) -> list[int]:
    """Run the command uninterrupted in process into RUN-whole (D seconds of work), then into RUN: start
    it, SIGKILL it a fraction of D after it has (re)written config.json (a run does so once it has loaded
    its data and state, right before its loop), start it again (resuming what it saved), and finish it
    in process. Returns the exit status of each killed start (-9 where the kill came before its end)."""
    whole = run.parent / f"{run.name}-whole"
    start = time.monotonic()
    assert main([a if a != str(run) else str(whole) for a in args]) == 0
    seconds = time.monotonic() - start
    config = run / "config.json"
    version = lambda: (config.stat().st_ino, config.stat().st_mtime_ns) if config.exists() else None
    statuses = []
    for fraction in fractions:
        again = ["--resume"] if (run / "checkpoints" / "last.pt").exists() else ["--overwrite"] if version() else []
        before = version()
        proc = start_cli(*args, *again)
        wait_until(proc, lambda: version() != before)
        time.sleep(fraction * seconds)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        statuses.append(proc.returncode)
    assert main([*args, "--resume" if (run / "checkpoints" / "last.pt").exists() else "--overwrite"]) == 0
    return statuses


def test_enas_killed_at_random_moments_resumes_to_the_uninterrupted_result(ptb_dir, tmp_path):
    rng = random.Random(20240607)
    run = tmp_path / "killed"
    args = _search(ptb_dir, run, *ENAS, "--set", "shared_steps=20", "--device", "cpu", "--quiet")
    statuses = _kill_at_random(args, run, [rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8)])
    assert statuses[0] == -signal.SIGKILL, "the first kill came mid-run"
    whole, killed = _state(tmp_path / "killed-whole"), _state(run)
    for part in ("supernet", "controller"):
        for key, value in whole[part].items():
            assert torch.equal(value, killed[part][key]), (part, key)
    assert _rows(run) == _rows(tmp_path / "killed-whole"), "every controller reward once, in order"


def test_nas_killed_at_random_moments_resumes_to_the_uninterrupted_result(ptb_dir, tmp_path):
    rng = random.Random(20240608)
    run = tmp_path / "killed"
    args = _search(ptb_dir, run, "--strategy", "nas", *NAS, "--set", "child_max_steps=10", "--device", "cpu",
                   "--quiet")
    statuses = _kill_at_random(args, run, [rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8)])
    assert statuses[0] == -signal.SIGKILL, "the first kill came mid-run"
    strip = lambda rows: sorted((r["child"], r["arch"], r["reward"], tuple(r["metrics"])) for r in rows)
    killed = _rows(run)
    assert len({r["child"] for r in killed}) == len(killed), "no child recorded twice"
    assert strip(killed) == strip(_rows(tmp_path / "killed-whole"))
    whole_state, killed_state = _state(tmp_path / "killed-whole"), _state(run)
    assert all(torch.equal(v, killed_state["controller"][k]) for k, v in whole_state["controller"].items())


def test_nas_reward_of_a_diverged_perplexity_is_tiny_not_an_overflow():
    from enas.child_training import nas_reward

    assert nas_reward({"metric": "ppl", "metrics": [1e200]}, c=80.0) == 0.0  # 80 / 1e400 underflows to 0
    assert nas_reward({"metric": "ppl", "metrics": [200.0, 100.0]}, c=80.0) == 80.0 / 100.0 ** 2
