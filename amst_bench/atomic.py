"""Atomic file writes (temp file in the same folder, fsync, rename): a reader never sees half a file.

A process killed mid-write leaves at most a hidden `.NAME.*.tmp` file, which nothing reads. The
kill tests use a fault point here: with `AMST_BENCH_KILL_DURING_WRITE=PATTERN[@N]` the process
SIGKILLs itself half-way through its N-th write (default 1st) of a file whose `FOLDER/NAME` (its
parent folder's name and its own) matches PATTERN, e.g. `runs/*.json` or `checkpoints/*.pt@2`.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

_FAULT_ENV = "AMST_BENCH_KILL_DURING_WRITE"
_fault_hits: dict[str, int] = {}


def _default_file_mode() -> int:
    """The mode `open()` would give a new file (0o666 less the umask): mkstemp's temp files are
    0o600, and a renamed result, table or site page must stay readable by others (a web host)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()  # read once: os.umask is read by setting it (not thread-safe)


def _kill_if_fault_point(path: Path, data: bytes, fh) -> None:
    spec = os.environ.get(_FAULT_ENV)
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if not fnmatch.fnmatch(f"{path.parent.name}/{path.name}", pattern):
        return
    _fault_hits[pattern] = _fault_hits.get(pattern, 0) + 1
    if _fault_hits[pattern] == int(nth or 1):
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            _kill_if_fault_point(path, data, fh)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. a full disk: name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(path: Path, obj: Any) -> None:
    import torch  # only where tensors are written, so light commands never import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
