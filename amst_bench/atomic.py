"""Atomic file writes (temp file in the same folder, fsync, rename): a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic_write_bytes(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, payload: dict[str, Any]) -> None:
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
    _atomic_write_bytes(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def atomic_torch_save(path: Path, obj: Any) -> None:
    _atomic_write_bytes(path, lambda fh: torch.save(obj, fh))
