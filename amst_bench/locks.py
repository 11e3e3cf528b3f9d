"""One process per run: an exclusive lock file per run id, so two `amst-bench run` processes on the
same results folder never train the same run twice.

The lock is an OS advisory lock (flock) on `<results>/locks/<run_id>.lock`: the kernel drops it when
its process dies, however it dies, so a lock left by a killed run is simply taken over. The file
itself stays (empty); it records the holder's pid for people reading the folder.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

# `is_held` probes a lock by taking it shared for an instant; a claim that meets the probe tries
# again a few times before it calls the run another process's.
_CLAIM_TRIES = 5
_CLAIM_PAUSE_S = 0.02


class RunLock:
    """`with RunLock(path) as held:` – `held` is False when another live process has the run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(_CLAIM_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _CLAIM_TRIES - 1:
                    os.close(fd)
                    return False
                time.sleep(_CLAIM_PAUSE_S)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_held(path: Path) -> bool:
    """Whether a live process holds the run's lock now (for `status`); never blocks, and holds a
    shared lock only for the instant of the probe."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock if it was taken
    return False
