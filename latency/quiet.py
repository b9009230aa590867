"""Is this machine quiet enough to time on? Other processes' CPU use, read from /proc/stat.

A LUT built while another job runs prices every op slow (the demo's winner was priced at
670 ms and ran in 165 ms on the quiet machine minutes later), and a steady load does not
show up as drift between build rounds; so the build looks at the machine itself.
"""
from __future__ import annotations

import os
import time

BUSY_CORES = 0.3      # other processes using more than this many cores make timings unreliable


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot; None where /proc/stat is unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)   # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_jiffies() -> int:
    """CPU jiffies this process (all its threads) has used."""
    t = os.times()
    return round((t.user + t.system) * os.sysconf("SC_CLK_TCK"))


def other_cores_busy(window_s: float = 1.0) -> float | None:
    """Cores' worth of CPU that other processes used during ``window_s`` seconds (None: cannot tell)."""
    a, own_a = _cpu_jiffies(), _own_jiffies()
    if a is None:
        return None
    time.sleep(window_s)
    b, own_b = _cpu_jiffies(), _own_jiffies()
    if b is None:
        return None
    ncores = os.cpu_count() or 1
    busy = (b[0] - a[0]) - (own_b - own_a)
    total = b[1] - a[1]
    return max(0.0, busy / total * ncores) if total > 0 else None


def busy_message(window_s: float = 1.0) -> str | None:
    """A warning text when other processes keep this machine's cores busy, else None."""
    used = other_cores_busy(window_s)
    if used is None or used <= BUSY_CORES:
        return None
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"this machine is BUSY: other processes used {used:.1f} of {os.cpu_count()} cores just now "
            f"(load average {load1:.1f}); latencies timed now are too slow and the LUT will misprice "
            f"candidates. Stop the other work and build on a quiet machine")
