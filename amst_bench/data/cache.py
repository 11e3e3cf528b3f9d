"""The tensor cache: one file per dataset state, named by a hash of the decode settings, the split
and every file's name, size and mtime, so a changed setting or file makes a new cache; written
atomically, so a half-written cache is never read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amst_bench.atomic import atomic_torch_save


def file_signature(path: Path) -> list:
    """Name, size and mtime of a file, or of each entry of a folder (frames)."""
    if path.is_dir():
        return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(path.iterdir())]
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class CachedSample:
    """What of a sample the key covers: its id, label and a file or folder per modality."""

    id: str
    label: str
    sources: Mapping[str, Path]


@dataclass(frozen=True)
class TensorCache:
    """The cache files of one dataset, `<cache dir>/<dataset>/<key>.pt`."""

    folder: Path
    dataset: str

    def key(
        self,
        settings: Mapping[str, Any],
        splits: Mapping[str, Sequence[str]],
        samples: Sequence[CachedSample],
        extra: str = "",
    ) -> str:
        """16 hex digits over the settings, the split and every sample's files. `extra` is text
        the key also covers (e.g. a class list the files name beyond the samples' labels)."""
        payload = {
            "dataset": self.dataset,
            "settings": settings,
            "splits": splits,
            "records": [
                [s.id, s.label, {m: file_signature(p) for m, p in sorted(s.sources.items())}]
                for s in sorted(samples, key=lambda s: s.id)
            ],
        }
        key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
        if extra:
            key = hashlib.sha256((key + extra).encode()).hexdigest()[:16]
        return key

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def save(self, key: str, payload: dict[str, Any]) -> Path:
        path = self.path(key)
        atomic_torch_save(path, payload)
        return path

    def load(self, key: str) -> dict[str, Any]:
        """The cache's tensors memory-mapped (copy-on-write; the file is never written): loading
        costs nothing up front, pages are read as batches touch them and stay in the page cache,
        not in the process's own memory (a 2,000-clip CREMA-D-sized cache is 1.4 GB)."""
        import torch

        return torch.load(self.path(key), map_location="cpu", weights_only=False, mmap=True)
