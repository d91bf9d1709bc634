"""Ctrl-C and SIGTERM as a request: the loop finishes (or abandons) its current unit, saves a checkpoint
and the command exits 130 (SIGINT) or 143 (SIGTERM), 128 + the signal number as shells report it.

SIGTERM is what Slurm, Kubernetes, `docker stop`, systemd and `timeout` send before they kill, so it
gets the same orderly stop as Ctrl-C. Stopping between units (rather than wherever the signal lands)
is what makes a resumed run equal an uninterrupted one: a checkpoint never holds a half-applied
update. A second signal stops at once (KeyboardInterrupt), keeping the last checkpoint.

Loops nest (the command, a search, a full-NAS child trained in this process): every level shares the
one flag the outermost installed, so a stop seen by an inner loop is seen by all. A signal handler
someone else installed (a worker pool's, SIG_IGN of a background job) is left in place: that
process's owner decides what a signal means there.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopFlag:
    def __init__(self):
        self.signum: int | None = None  # the signal that asked to stop

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __bool__(self) -> bool:
        return self.requested

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)


class Stopped(BaseException):
    """Work that was asked to stop before it finished (a full-NAS child trained in this process): its
    caller abandons it. Not an Exception, so that code turning failures into results lets it pass."""


_active: StopFlag | None = None  # the flag of the outermost stop_on_interrupt


def _unclaimed(signum: int) -> bool:
    return signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)


@contextmanager
def stop_on_interrupt():
    global _active
    if _active is not None:
        yield _active
        return
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals reach only the main thread; nothing to install
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.signum = signum

    previous = {s: signal.getsignal(s) for s in SIGNALS if _unclaimed(s)}
    for s in previous:
        signal.signal(s, handler)
    _active = flag
    try:
        yield flag
    finally:
        _active = None
        for s, h in previous.items():
            signal.signal(s, h)
