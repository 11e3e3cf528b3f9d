"""Naming a dataset on the command line: `name` or `name:PATH`, plus where data and caches live.

`cremad:/data/CREMA-D` points an adapter at a folder; a bare `cremad` looks in
`<data root>/cremad` (data root from --data-root or $AMST_BENCH_DATA). Caches go to --cache-dir,
$AMST_BENCH_CACHE or ./cache. Dataset options come from `--set DATASET.OPTION=VALUE`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from amst_bench import registry
from amst_bench.errors import UserError


@dataclass(frozen=True)
class DataLocations:
    data_root: Path | None = None
    cache_dir: Path = Path("cache")
    # dataset name → {option: value}
    options: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_environment(
        cls,
        data_root: Path | None = None,
        cache_dir: Path | None = None,
        options: dict[str, dict[str, str]] | None = None,
    ) -> DataLocations:
        env_root = os.environ.get("AMST_BENCH_DATA")
        return cls(
            data_root=data_root or (Path(env_root) if env_root else None),
            cache_dir=cache_dir or Path(os.environ.get("AMST_BENCH_CACHE", "cache")),
            options=options or {},
        )


@dataclass(frozen=True)
class DatasetRef:
    """A dataset as named on the command line. Only `name` (the registered name) is its identity:
    run ids, method presets and leaderboard columns see the name; `path` is where the files are,
    recorded as provenance, so moving a dataset folder never makes a run look new."""

    name: str
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        name, sep, path = text.partition(":")
        return cls(name.strip(), Path(path.strip()).expanduser() if sep and path.strip() else None)

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name}:{self.path}"


def select_datasets(text: str) -> list[DatasetRef]:
    """Dataset references from a comma list (names may carry ':PATH'); names are checked, 'all'
    and wildcards expand to registered names without paths. A name given twice is an error."""
    refs: list[DatasetRef] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        ref = DatasetRef.parse(part)
        if ref.path is None:
            new = [DatasetRef(n) for n in registry.datasets.select(ref.name)]
        else:
            registry.datasets.get(ref.name)
            new = [ref]
        for item in new:
            clash = next((r for r in refs if r.name == item.name), None)
            if clash is not None and clash != item:
                raise UserError(f"dataset {item.name!r} named twice with different folders ({clash}, {item})")
            if clash is None:
                refs.append(item)
    if not refs:
        raise UserError("no dataset given")
    return refs


def dataset_root(ref: DatasetRef, locations: DataLocations) -> Path | None:
    """The folder an adapter reads: the reference's own path, else `<data root>/<name>`."""
    return ref.path or (locations.data_root / ref.name if locations.data_root else None)


def make_adapter(ref: DatasetRef | str, locations: DataLocations):
    """The adapter instance for a dataset reference, pointed at its folder and cache."""
    from amst_bench.data.adapter import DataSource

    if isinstance(ref, str):
        ref = DatasetRef.parse(ref)
    cls = registry.datasets.get(ref.name)
    return cls(
        DataSource(
            root=dataset_root(ref, locations),
            cache_dir=locations.cache_dir,
            options=dict(locations.options.get(ref.name, {})),
        )
    )
