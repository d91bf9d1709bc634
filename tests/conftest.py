from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    path = SHARED_DATA / "ptb"
    if not (path / "ptb.train.txt").exists():
        pytest.fail(f"the real PTB files are expected in {path}")
    return path


import os
import subprocess
import sys

import torch

# Tiny models gain nothing from a second thread, and on a busy machine OpenMP threads waiting on
# each other make every small matmul many times slower.
torch.set_num_threads(1)


def run_cli(*args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m enas ARGS` in a subprocess, as a user runs it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "enas", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def tiny_search_cfg(ptb_dir):
    """The tiny PTB search, smaller still: a few seconds in process."""
    from enas.config import apply_overrides, preset

    cfg = preset("search", "ptb", "tiny")
    cfg.data_dir = str(ptb_dir)
    return apply_overrides(cfg, ["shared_steps=6", "controller.steps=3", "eval_max_batches=3",
                                 "derive_samples=4", "log_every=2"])
