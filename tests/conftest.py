import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the real data sets (PTB, Fashion-MNIST): ../shared/data beside the checkout, or $ENAS_TEST_DATA
SHARED_DATA = Path(os.environ.get("ENAS_TEST_DATA") or ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    path = SHARED_DATA / "ptb"
    if not (path / "ptb.train.txt").exists():
        pytest.fail(f"the real PTB files are expected in {path}")
    return path


import subprocess
import sys
import time

import torch

# Tiny models gain nothing from a second thread, and on a busy machine OpenMP threads waiting on
# each other make every small matmul many times slower.
torch.set_num_threads(1)


CLI_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def run_cli(*args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m enas ARGS` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "enas", *args], cwd=cwd, env=CLI_ENV, capture_output=True,
                          text=True, timeout=timeout)


def start_cli(*args: str, **popen) -> subprocess.Popen:
    """`python -m enas ARGS` started in the background, for a test to signal it."""
    return subprocess.Popen([sys.executable, "-m", "enas", *args], env=CLI_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def wait_until(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    """Poll until ready() while proc runs; fails with its stderr if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"not ready (exit status {proc.poll()}): {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)


@pytest.fixture
def tiny_search_cfg(ptb_dir):
    """The tiny PTB search, smaller still: a few seconds in process."""
    from enas.config import apply_overrides
    from enas.strategies import preset

    cfg = preset("search", "ptb", "tiny")
    cfg.data_dir = str(ptb_dir)
    return apply_overrides(cfg, ["shared_steps=6", "controller.steps=3", "eval_max_batches=3",
                                 "derive_samples=4", "log_every=2"])


@pytest.fixture
def nas_cfg(ptb_dir):
    """A tiny full-NAS search on PTB: 2 controller updates of 2 children each."""
    from enas.config import apply_overrides
    from enas.strategies import preset

    cfg = preset("search", "ptb", "tiny", strategy="nas")
    cfg.data_dir = str(ptb_dir)
    return apply_overrides(cfg, ["nas.updates=2", "controller.num_aggregate=2", "child_epochs=2",
                                 "child_max_steps=3", "eval_max_batches=1", "space_options.num_nodes=3"])
