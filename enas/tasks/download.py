"""Atomic, checksummed downloads into the data cache (PTB and CIFAR-10 share it), and reading a data
file so that an unreadable one is a DataError."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from ..errors import DataError


def download(url: str, dest: Path, algorithm: str, expected: str | None, timeout: float) -> None:
    """Stream `url` into a temporary file next to `dest`, check its digest (`algorithm`, e.g. "sha256"
    or "md5"), fsync, then rename into place; a failed or altered download leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.new(algorithm, usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and digest.hexdigest() != expected:
            raise DataError(f"downloaded {dest.name} from {url}: {algorithm} checksum does not match "
                            f"(got {digest.hexdigest()[:12]}..., expected {expected[:12]}...)")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_data(path: Path) -> bytes:
    """The bytes of a data file; one that cannot be read (permissions, an I/O error, a directory) is a
    DataError naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read the data file {path}: {e.strerror or e}; check its permissions, or "
                        f"delete it to download it again") from None
