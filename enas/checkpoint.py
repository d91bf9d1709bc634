"""Checkpoints that survive a crash at any moment, and the random state that makes resume exact.

A checkpoint is written to a temporary file in the same directory, flushed and fsync'ed, then renamed
over the old one (rename within a directory is atomic on POSIX), and the directory is fsync'ed so the
rename itself is durable. Killing the process at any point leaves either the old or the new file.

Checkpoints load with torch's safe unpickler (`weights_only=True`): a state may hold tensors,
numbers, strings, None and lists / tuples / dicts of them (model and optimizer state_dicts, `rng_state()`,
`str(arch)`), which keeps a run directory from ever executing code when it is resumed.
"""
from __future__ import annotations

import errno
import os
import pickle
import random
import re
import secrets
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, IO

import numpy as np
import torch

from .errors import CheckpointError, WriteError


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(f)` on a temporary file beside `path`, make it durable, then rename it to `path`.

    On any exception the temporary file is removed and `path` is left as it was; a full disk raises
    WriteError ("no space left on device while writing PATH"). A symbolic link at `path` is replaced,
    never written through.
    """
    path = Path(path)
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp")  # _PARTIAL matches it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Mode 0o666 less the umask, like the event files beside it (mkstemp would make it 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also KeyboardInterrupt: Ctrl-C during a save must not leave debris
        if os.path.exists(tmp):
            os.unlink(tmp)
        if disk_full(e):
            raise WriteError(f"no space left on device while writing {path} (its previous version is kept); "
                             f"free some space, then run the command again (with --resume to continue)") from None
        raise
    _fsync_dir(path.parent)


def disk_full(exc: BaseException) -> bool:
    """Whether exc, or an error it was raised from (torch.save wraps the OSError of a failed write in a
    RuntimeError), says the disk or the user's quota is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_PARTIAL = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")


def remove_partial_writes(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that atomic_write left in `directory` when its process was killed
    mid-write; returns them. Only for a directory no other process writes (hold its run lock): a save
    in progress looks the same."""
    partial = [p for p in Path(directory).glob(".*.tmp") if _PARTIAL.fullmatch(p.name)]
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


def _fsync_dir(directory: Path) -> None:
    """Persist a rename (POSIX); directories cannot be opened for fsync on Windows, so skip there."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (see module docstring).

    A state that the safe loader would refuse raises TypeError here, at save time, naming the entry.
    """
    if not isinstance(state, dict):
        raise TypeError(f"a checkpoint state is a dict, not a {type(state).__name__}")
    _check_plain(state, "state")
    # torch.save looked up at call time, so tests can make it fail mid-write.
    atomic_write(path, lambda f: torch.save(state, f))


_LEAVES = (int, float, bool, complex, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError unless obj is made of what `torch.load(weights_only=True)` accepts."""
    if isinstance(obj, torch.Tensor) or type(obj) in _LEAVES:
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            _check_plain(k, f"{where} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
    else:
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise TypeError(f"{where} is a {kind}; a checkpoint may only hold tensors, numbers, strings "
                        f"and lists/tuples/dicts of them")


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The state saved at `path`; a missing, truncated or corrupt file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch names what the safe unpickler refused: "Unsupported global: GLOBAL numpy...._reconstruct"
        # for a class it does not know, "unsupported GLOBAL posix.system whose module posix is blocked"
        # for a module it never imports.
        found = re.search(r"GLOBAL ([\w.]+)", str(e), re.IGNORECASE)
        if found:
            raise CheckpointError(f"checkpoint {path} refused: it asks to load {found.group(1)}; a checkpoint "
                                  f"may only hold tensors, numbers, strings and lists/tuples/dicts of them") from None
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (not a torch checkpoint)") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, AttributeError, ImportError,
            OSError) as e:
        # e.g. "PytorchStreamReader failed reading zip archive: failed finding central directory"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0][:160]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    return state


def rng_state() -> dict[str, Any]:
    """Generator states of python `random`, numpy's global generator, torch CPU and every CUDA device.

    Only tensors, ints, floats and tuples, so it round-trips through `save_checkpoint`/`load_checkpoint`.
    """
    # {'bit_generator', 'state': {'key', 'pos'}, 'has_gauss', 'gauss'}
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),  # [624] uint32 values
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(rng: Any, state: Any) -> None:
    """Restore a python `random.Random` (or the `random` module) from its `getstate()` as a checkpoint
    returns it (the inner tuple may come back as a list)."""
    version, internal, gauss_next = state
    rng.setstate((version, tuple(internal), gauss_next))


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` captured. CUDA states are restored when this machine has CUDA."""
    try:
        set_random_state(random, state["python"])
        n = state["numpy"]
        key = np.asarray(n["key"].cpu().numpy() if torch.is_tensor(n["key"]) else n["key"], dtype=np.uint32)
        np.random.set_state((n["bit_generator"], key, int(n["pos"]), int(n["has_gauss"]), float(n["gauss"])))
        torch.set_rng_state(state["torch"].cpu())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint holds an unreadable random state ({type(e).__name__})") from None
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]][: torch.cuda.device_count()]
        for i, s in enumerate(cuda):
            torch.cuda.set_rng_state(s, i)
