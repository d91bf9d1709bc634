"""What a new user meets in the first hour, run as the user runs it: a closed pipe, the examples that
--help shows, a refused command's traces, and the word said early about a run of many hours."""
import re
import subprocess
import sys

import pytest

from enas import projection
from enas.cli import SET_EXAMPLES, main
from enas.config import apply_overrides
from enas.strategies import start_search


@pytest.mark.parametrize("command", [["spaces"], ["config"]])
def test_a_closed_pipe_ends_the_command_quietly(command):
    proc = subprocess.Popen([sys.executable, "-m", "enas", *command], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline()  # `| head -1`: one line read, then the pipe closed
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("command", ["search", "train", "compare", "config"])
def test_every_example_in_help_is_a_key_of_its_config(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    shown = re.findall(r"set a (search|train) config field by its dotted name, e\.g\. (\S+) or (\S+)", text)
    assert shown and all(tuple(examples) == SET_EXAMPLES[kind] for kind, *examples in shown)
    for kind, *examples in shown:
        for example in examples:
            assert main(["config", "--kind", kind, "--set", example]) == 0, example
            key, value = example.split("=")
            lines = [line.split("=", 1) for line in capsys.readouterr().out.splitlines()[1:]]
            assert any(k.endswith(key) and float(v) == float(value) for k, v in lines), example


def test_a_refused_command_leaves_no_directory(ptb_dir, tmp_path, capsys):
    refused = [
        ["search", "--preset", "tiny", "--data-dir", str(ptb_dir), "--set", "no_such_key=1"],
        ["search", "--preset", "tiny", "--data-dir", str(ptb_dir), "--set", "epochs=-1"],
        ["search", "--preset", "tiny", "--data-dir", str(tmp_path / "no-data")],
        ["train", "--preset", "tiny", "--space", "enas_rnn", "--arch", "0 9 9", "--data-dir", str(ptb_dir)],
    ]
    for args in refused:
        assert main([*args, "--logdir", str(tmp_path / "runs" / "new")]) == 2, args
        assert capsys.readouterr().err.startswith("error: ")
        assert not (tmp_path / "runs").exists(), args
    (tmp_path / "mine").mkdir()  # a directory the user made stays, without the lock file
    assert main([*refused[0], "--logdir", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def test_a_long_run_is_said_once_early(tiny_search_cfg, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(projection, "AFTER_SECONDS", 0.0)
    cfg = apply_overrides(tiny_search_cfg, ["epochs=1000000"])
    search = start_search(cfg, tmp_path / "long", progress=False)
    assert search.run(max_units=5) is False
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and re.search(r"ends in about [\d,]+ hours on cpu; `--preset small` learns", notes[0])

    search = start_search(tiny_search_cfg, tmp_path / "short", progress=False)
    assert search.run(max_units=5) is False
    assert "note:" not in capsys.readouterr().err, "a run of minutes is not remarked on"
