"""The run directory as a whole: one writer at a time, and what makes a directory hold a run.

A command that writes a run directory (search, derive, train, compare) holds an exclusive OS lock on
RUN/.lock (flock) for its whole life and writes its pid there, so that a second command on the same
directory can name the process it waits for. The kernel drops the lock when its process ends, however
it ends (SIGKILL, the out-of-memory killer), so a lock is never stale; the file itself stays. Holding
the lock, a command removes the temporary files of saves that a kill cut short.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .checkpoint import remove_partial_writes
from .errors import CheckpointError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

LOCK_FILE = ".lock"
# what a search, a final training or a comparison writes; a directory with any of them holds a run
RUN_FILES = ("config.json", "archs.jsonl", "arch.json", "results.json", "distributed.json", "comparison.md",
             "comparison.json", "events.out.tfevents.*", "checkpoints")


@contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold run_dir's lock (making the directory) until the block ends; CheckpointError naming the
    holder's pid when another process has it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise CheckpointError(f"{run_dir} is in use by another process (pid {holder}); wait for it "
                                      f"to end or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for directory in (run_dir, run_dir / "checkpoints"):  # where atomic saves write
            remove_partial_writes(directory)
        yield run_dir
    finally:
        os.close(fd)  # releases the lock


def run_files(run_dir: str | os.PathLike, names: Iterable[str] = RUN_FILES) -> list[Path]:
    """The files (and folders) of a run that run_dir holds, of `names` (glob patterns)."""
    return sorted(path for name in names for path in Path(run_dir).glob(name))


def remove(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
