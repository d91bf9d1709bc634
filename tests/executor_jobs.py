"""Work functions for tests/test_executors.py. They live in their own importable module because the
executors' worker processes (spawned pool workers, Ray workers) import the function by name."""
from __future__ import annotations

import os
import time
from pathlib import Path


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def work(payload: dict) -> dict:
    """What the job does is named by payload["kind"]; a plain result otherwise."""
    kind = payload.get("kind", "ok")
    if kind == "wait":  # held until the test creates payload["release"] (or gives up after `timeout`)
        released = _wait_for(Path(payload["release"]), payload.get("timeout", 30.0))
        return {"metrics": [1.0], "seconds": 0.0, "released": released, "pid": os.getpid()}
    if kind == "raise":
        raise ValueError("bad child\nsecond line of the message")
    if kind == "nan":
        return {"metrics": [2.0, float("nan")], "seconds": 0.0}
    if kind == "memory":
        raise MemoryError("cannot allocate 1 TiB")
    if kind == "die_once":  # dies on its first run; the marker file tells the second run it already died
        marker = Path(payload["dir"]) / f"died-{payload['name']}"
        if not marker.exists():
            marker.touch()
            os._exit(3)
    if kind == "die":
        os._exit(3)
    if kind == "threads":
        return {"metrics": [0.0], "seconds": 0.0, "omp": os.environ.get("OMP_NUM_THREADS")}
    return {"metrics": [float(payload.get("x", 0.0)) ** 2], "seconds": 0.0, "pid": os.getpid()}
