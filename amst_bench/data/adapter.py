"""What every dataset adapter is: the runner and `amst-bench data` call these methods and read
`reads_files`, so an adapter declares what it does instead of being probed with hasattr.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from amst_bench.data.tensors import DatasetBundle
from amst_bench.options import build_options
from amst_bench.protocol import Protocol

Progress = Callable[[int, int], None]


@dataclass
class DataSource:
    """Where a dataset lives and where its cache goes (from `--datasets name:PATH`, --data-root,
    --cache-dir), and its raw `--set NAME.OPTION=VALUE` strings."""

    root: Path | None = None
    cache_dir: Path = Path("cache")
    options: dict[str, str] = field(default_factory=dict)


class DatasetAdapter(ABC):
    """Base class of every dataset. `load` is the one thing an adapter must do; `check` and
    `prepare` do nothing unless the dataset reads files (`reads_files`: then `amst-bench data`
    applies to it and the runner shows decoding progress)."""

    name: ClassVar[str] = ""  # set by register_dataset
    description: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    default_skip: ClassVar[dict[str, int]] = {}
    reads_files: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Options:
        """`--set NAME.OPTION=…` keys the adapter reads (none by default)."""

    def __init__(self, source: DataSource | None = None):
        self.source = source or DataSource()
        self.options = self.resolve_options(self.source.options)

    def resolve_options(self, raw: dict[str, str]) -> Any:
        """The typed options from `--set` strings: every unknown key or bad value is one line
        naming the flag (amst_bench.options.build_options)."""
        return build_options(self.Options, raw, owner=self.name)

    def resolved_options(self) -> dict[str, Any]:
        """Every option's value, defaults included (recorded with each result)."""
        return dataclasses.asdict(self.options)

    def check(self, protocol: Protocol, decode: bool = True) -> list[str]:
        """Every problem of the dataset at once, nothing trained; none for generated data."""
        return []

    def prepare(self, protocol: Protocol, progress: Progress | None = None) -> Path | None:
        """Decode once into the tensor cache and return its file; None when there is nothing to
        prepare."""
        return None

    @abstractmethod
    def load(self, protocol: Protocol, progress: Progress | None = None) -> DatasetBundle:
        """The dataset's splits as tensors; `bundle.options` holds `resolved_options()`."""
