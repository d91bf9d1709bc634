"""One early word when a run will take many hours on this machine: the pace of its first minute,
projected to its end (a `paper` preset started on a laptop shows an ETA of hundreds of hours and
nothing else)."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

LONG_HOURS = 3.0       # a projection beyond this is said
AFTER_SECONDS = 60.0   # the pace is read once, when the run has gone this long


class Projection:
    """Counts a run's units of work (`step()` after each) and, once AFTER_SECONDS have passed, says on
    stderr when the units left would take more than LONG_HOURS at the pace so far."""

    def __init__(self, units_left: int, where: str):
        self.left, self.where = units_left, where
        self.start, self.done, self.read = time.monotonic(), 0, False

    def step(self) -> None:
        self.done += 1
        if self.read:
            return
        elapsed = time.monotonic() - self.start
        if elapsed < AFTER_SECONDS:
            return
        self.read = True
        hours = (self.left - self.done) * elapsed / self.done / 3600
        if hours > LONG_HOURS:
            tqdm.write(f"note: at its pace so far this run ends in about {hours:,.0f} hours on {self.where}; "
                       f"`--preset small` learns in about an hour on two CPU cores, `--preset tiny` runs in a "
                       f"minute", file=sys.stderr)
