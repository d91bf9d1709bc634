"""Ctrl-C as a request: the loop finishes its current step, saves a checkpoint and exits 130.

Stopping between steps (rather than wherever the signal lands) is what makes a resumed run equal
an uninterrupted one: a checkpoint never holds a half-applied update. A second Ctrl-C stops at once.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class StopFlag:
    def __init__(self):
        self.requested = False

    def __bool__(self) -> bool:
        return self.requested


@contextmanager
def stop_on_interrupt():
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals reach only the main thread; nothing to install
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
