"""The run directory as a whole: one writer at a time, what makes a directory hold a run, and reading
what a run directory holds without trusting it.

A command that writes a run directory (search, derive, train, compare) holds an exclusive OS lock on
RUN/.lock (flock) for its whole life and writes its pid there, so that a second command on the same
directory can name the process it waits for. The kernel drops the lock when its process ends, however
it ends (SIGKILL, the out-of-memory killer), so a lock is never stale; the file itself stays. Holding
the lock, a command removes the temporary files of saves that a kill cut short, and refuses a run
directory whose files are symbolic links: they are written in place, never through a link.

A run directory may come from someone else: its JSON files are read only when they are regular files
of reasonable size (a FIFO or a device is never opened), and archs.jsonl only when every row is a
record.
"""
from __future__ import annotations

import errno
import fnmatch
import json
import os
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .checkpoint import remove_partial_writes
from .errors import CheckpointError, EnasError, WriteError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

LOCK_FILE = ".lock"
# what a search, a final training or a comparison writes; a directory with any of them holds a run
RUN_FILES = ("config.json", "archs.jsonl", "arch.json", "results.json", "distributed.json", "comparison.md",
             "comparison.json", "events.out.tfevents.*", "checkpoints", "analysis", "hparams")


@contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold run_dir's lock (making the directory) until the block ends; CheckpointError naming the
    holder's pid when another process has it, WriteError when the directory cannot be written or its
    run files are symbolic links. The lock file and the directories it made are removed again when the
    block leaves nothing beside the lock (a refused command leaves no trace)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise WriteError(f"{run_dir} is not a directory; choose another run directory")
    made = [d for d in (run_dir, *run_dir.parents) if not d.exists()]  # deepest first
    lock_made = not (run_dir / LOCK_FILE).exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        if not os.access(run_dir, os.W_OK | os.X_OK):  # the lock file may be writable in a read-only directory
            os.close(fd)
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(run_dir))
    except OSError as e:
        raise WriteError(f"cannot write the run directory {run_dir}: {e.strerror or e}"
                         + (f" ({e.filename})" if e.filename and str(e.filename) != str(run_dir) else "")) from None
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
        refuse_links(run_dir)
        for directory in (run_dir, run_dir / "checkpoints"):  # where atomic saves write
            remove_partial_writes(directory)
        yield run_dir
    finally:
        if lock_made and [p.name for p in run_dir.iterdir()] == [LOCK_FILE]:
            (run_dir / LOCK_FILE).unlink()
            for d in made:
                if any(d.iterdir()):
                    break
                d.rmdir()
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


def refuse_links(run_dir: str | os.PathLike) -> None:
    """WriteError when a file a run writes (config.json, archs.jsonl, checkpoints/last.pt, ...) is a
    symbolic link: appending to it or creating it would write wherever the link points."""
    run_dir = Path(run_dir)
    links = _links(run_dir, RUN_FILES)
    if not links and (run_dir / "checkpoints").is_dir():
        links = _links(run_dir / "checkpoints", ("*",))
    if links:
        raise WriteError(f"{links[0]} is a symbolic link (to {os.readlink(links[0])}); a run directory's files "
                         f"are written in place, never through a link: replace it with a copy of what it points "
                         f"to, or remove it")


def _links(directory: Path, patterns: Iterable[str]) -> list[Path]:
    """The entries of directory matching a glob pattern that are symbolic links (dangling ones too)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    return sorted(Path(e.path) for e in entries
                  if e.is_symlink() and any(fnmatch.fnmatchcase(e.name, p) for p in patterns))


MAX_JSON_BYTES = 1 << 20  # config.json and arch.json are a few kB


def read_json(path: str | os.PathLike, what: str, error: type[EnasError] = CheckpointError) -> Any:
    """The JSON value of a small file (config.json, arch.json): a regular file of at most 1 MB of UTF-8
    text. It is checked before it is opened, so a FIFO or a device never blocks; anything else raises
    `error` with one line that says what `what` (e.g. "the architecture file") is wrong."""
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise error(f"{what} {path} is {kind}; give a JSON file")
        if info.st_size > MAX_JSON_BYTES:
            raise error(f"{what} {path} is {info.st_size:,} bytes, more than a JSON file of this kind holds "
                        f"(at most {MAX_JSON_BYTES:,}); give the right file")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped since the stat above
                raise error(f"{what} {path} is not a regular file; give a JSON file")
            data = f.read(MAX_JSON_BYTES + 1)
    except OSError as e:
        raise error(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text (byte {e.start}); give a JSON file") from None
    except (ValueError, RecursionError) as e:
        raise error(f"{what} {path} is not valid JSON ({str(e)[:160]})") from None


def read_archs(run_dir: str | os.PathLike) -> list[dict]:
    """The records of RUN/archs.jsonl (none if it is absent); CheckpointError unless it is UTF-8 text
    whose lines are JSON objects with an integer "step" (and, where present, an integer "child" and a
    string "phase"). The last line may be cut short: a record a kill interrupted, left out here and
    dropped when the run resumes."""
    path = Path(run_dir) / "archs.jsonl"
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is not a regular file; move it away to continue the run")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is not UTF-8 text (byte {e.start}); it was altered: restore it or "
                              f"remove the damaged lines") from None
    lines, records = text.splitlines(), []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            if number == len(lines):
                continue  # cut off by a kill mid-write
            raise CheckpointError(f"{path} line {number} is not JSON; it was altered: restore it or remove "
                                  f"that line") from None
        if not (isinstance(record, dict) and _whole(record.get("step"))
                and _whole(record.get("child", 0)) and isinstance(record.get("phase", ""), str)):
            raise CheckpointError(f"{path} line {number} is not an architecture record (a JSON object with an "
                                  f"integer \"step\"); it was altered: restore it or remove that line")
        records.append(record)
    return records


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
