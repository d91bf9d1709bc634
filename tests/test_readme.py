"""The README's main job and then every command of its tiny tour run as written, in order, in one fresh
directory beside a view of ../shared (so `../shared/data/...` resolves as in the repository), and
report success; the next step a command suggests is the tour's next command for that run."""
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SHARED_DATA

MARKER = "<!-- tiny tour -->"


def main_job() -> str:
    """The one command of the README's third code block (after install and test)."""
    blocks = re.findall(r"```\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    lines = [line for line in blocks[1].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("enas search"), blocks[1]
    return lines[0]


def tour_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(re.escape(MARKER) + r"\s*```\n(.*?)```", text, re.S)
    assert block, f"README.md has no code block after {MARKER}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_tour_is_tiny():
    commands = [main_job(), *tour_commands()]
    assert len(commands) >= 8
    for line in commands:
        assert line.startswith("enas ") and "~" not in line, line
        # derive and analyze take their sizes from the tiny run; compare is tiny by default
        assert "--preset tiny" in line or line.split()[1] in ("derive", "analyze", "compare"), line


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # the tour starts a local Ray instance (setup.cfg)
def test_every_tour_command_runs_as_written(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    cwd = tmp_path / "project"
    cwd.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    times, commands = [], [main_job(), *tour_commands()]
    for line in commands:
        args = shlex.split(line)[1:]
        start = time.monotonic()
        # a generous limit against hangs; the README states the measured times
        done = subprocess.run([sys.executable, "-m", "enas", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        times.append((line, time.monotonic() - start))
        assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
        assert "next:" in done.stdout or "comparison" in done.stdout, done.stdout
        suggested = re.search(r"next: (enas train --arch (\S+) .*)", done.stdout)
        if suggested and any(c.startswith(f"enas train --arch {suggested.group(2)} ") for c in commands):
            assert suggested.group(1) in commands, f"{line} suggests: {suggested.group(1)}"
    for line, seconds in times:
        print(f"{seconds:6.1f} s  {line}")
    assert (cwd / "runs" / "ptb-final" / "results.json").exists() and (cwd / "runs" / "cmp" / "comparison.md").exists()
