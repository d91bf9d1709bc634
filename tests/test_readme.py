"""Every command of the README's tiny tour runs as written, in order, in a fresh directory beside a
view of ../shared (so `../shared/data/...` resolves as in the repository), and reports success."""
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA

MARKER = "<!-- tiny tour -->"


def tour_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(MARKER) + r"\s*```\n(.*?)```", text, re.S)
    assert block, f"README.md has no code block after {MARKER}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_tour_is_tiny():
    commands = tour_commands()
    assert commands[0].startswith("enas search") and len(commands) >= 8
    for line in commands:
        assert line.startswith("enas ") and "~" not in line, line
        assert "--preset tiny" in line or line.split()[1] in ("derive", "compare"), line  # compare: tiny by default


@pytest.mark.slow
def test_every_tour_command_runs_as_written(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    cwd = tmp_path / "project"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    times = []
    for line in tour_commands():
        args = shlex.split(line)[1:]
        start = time.monotonic()
        # a generous limit against hangs; the README states the measured times
        done = subprocess.run([sys.executable, "-m", "enas", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        times.append((line, time.monotonic() - start))
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        assert "next:" in done.stdout or "comparison" in done.stdout, done.stdout
    for line, seconds in times:
        print(f"{seconds:6.1f} s  {line}")
    assert (cwd / "runs" / "final" / "results.json").exists() and (cwd / "runs" / "cmp" / "comparison.md").exists()
