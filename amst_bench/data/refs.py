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


def split_spec(spec: str) -> tuple[str, Path | None]:
    name, sep, path = spec.partition(":")
    return name.strip(), (Path(path).expanduser() if sep and path else None)


def select_datasets(text: str) -> list[str]:
    """Dataset specs from a comma list (names may carry ':PATH'); names are checked, 'all' and
    wildcards expand to registered names without paths."""
    specs: list[str] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, path = split_spec(part)
        if path is None:
            specs.extend(s for s in registry.datasets.select(name) if s not in specs)
        else:
            registry.datasets.get(name)
            if part not in specs:
                specs.append(part)
    if not specs:
        raise UserError("no dataset given")
    return specs


def make_adapter(spec: str, locations: DataLocations):
    """The adapter instance for a dataset spec, pointed at its folder and cache."""
    from amst_bench.data.files import DataSource

    name, path = split_spec(spec)
    cls = registry.datasets.get(name)
    root = path or (locations.data_root / name if locations.data_root else None)
    return cls(
        DataSource(root=root, cache_dir=locations.cache_dir, options=dict(locations.options.get(name, {})))
    )
