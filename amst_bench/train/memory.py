"""Peak host memory of a CPU run: the process's peak resident set size (RSS) since the run started.

On Linux the kernel's high-water mark (VmHWM) is reset at the run's start (`/proc/self/clear_refs`,
value 5), so each run of a grid reports its own peak; where that is not possible (another OS, a
locked-down /proc) the figure is the process's peak so far (getrusage), which is still an upper
bound for the run. It includes everything resident: Python, torch and the dataset in memory.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window; False where the kernel does not offer it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """The peak RSS since the last reset (Linux), else the process's lifetime peak."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
