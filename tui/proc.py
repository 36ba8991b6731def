"""A process's CPU use and resident memory from /proc (Linux): the monitor's panel on a machine without a GPU."""

from __future__ import annotations

import os
import time
from pathlib import Path


class ProcUsage:
    """CPU use and resident memory of one process, read from ``/proc/<pid>/stat`` and ``/proc/<pid>/statm``.

    :meth:`read` gives (CPU %, resident bytes): the CPU % is of one core (a trainer on 8 threads can show 800 %),
    over the time since the previous read, so the first read has none; either is None where /proc cannot tell
    (another OS, the process gone, an unreadable file). Never raises.
    """

    def __init__(self, pid: int, clock=time.monotonic, proc: str | os.PathLike = "/proc"):
        self.pid = pid
        self.clock = clock
        self.dir = Path(proc) / str(pid)
        self._last: tuple[float, float] | None = None  # (clock, CPU seconds) at the previous read
        try:
            self._tick = float(os.sysconf("SC_CLK_TCK"))
            self._page = float(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            self._tick, self._page = 100.0, 4096.0

    def read(self) -> tuple[float | None, float | None]:
        try:
            stat = (self.dir / "stat").read_text()
            statm = (self.dir / "statm").read_text()
            # the fields after the command name (which may hold spaces and parentheses): state is field 3,
            # utime and stime (clock ticks) fields 14 and 15
            fields = stat[stat.rindex(")") + 2:].split()
            cpu = (int(fields[11]) + int(fields[12])) / self._tick
            rss = int(statm.split()[1]) * self._page
        except (OSError, ValueError, IndexError):
            self._last = None
            return None, None
        now = self.clock()
        pct = None
        if self._last is not None and now > self._last[0]:
            pct = max(100.0 * (cpu - self._last[1]) / (now - self._last[0]), 0.0)
        self._last = (now, cpu)
        return pct, rss
