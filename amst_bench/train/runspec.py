"""A run's identity: method (with its options), dataset, seed and the protocol it ran under.

The run id is stable, so any executor can run a grid idempotently: a finished run is never redone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amst_bench.data.refs import DatasetRef
from amst_bench.options import non_default_options, variant_name
from amst_bench.protocol import Protocol, stable_hash, without_unset_later_fields
from amst_bench.train.method import Method


def variant_label(method_name: str, config: Any) -> str:
    """'amst-alt' for the defaults, 'amst-alt[skip_enabled=False]' when options differ."""
    return variant_name(method_name, non_default_options(config))


def protocol_label(protocol: Protocol, overrides: dict[str, str]) -> str:
    """Leaderboards group runs by this: the profile, plus any overrides that changed it."""
    if not overrides:
        return protocol.profile
    shown = {k: (Path(v).name if k == "text_model" else v) for k, v in overrides.items()}
    extra = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    return f"{protocol.profile} ({extra})"


@dataclass
class RunSpec:
    method_cls: type[Method]
    method_config: Any
    dataset: str  # the registered name: all a run's identity knows of its data
    seed: int
    protocol: Protocol
    overrides: dict[str, str] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)
    # Where the dataset's files are (from `NAME:PATH`): provenance only, never part of the identity.
    dataset_path: Path | None = None

    @property
    def method(self) -> str:
        return self.method_cls.name

    @property
    def dataset_ref(self) -> DatasetRef:
        return DatasetRef(self.dataset, self.dataset_path)

    @property
    def variant(self) -> str:
        return variant_label(self.method, self.method_config)

    def identity(self) -> dict[str, Any]:
        """Everything that makes two runs the same run (the seed is part of the id, not the hash)."""
        protocol = without_unset_later_fields(self.protocol.to_dict())  # older runs keep their ids
        protocol.pop("seeds")
        protocol.pop("device")  # where it ran changes timings, not what ran
        protocol.pop("cpu_threads")
        identity = {
            "method": self.method,
            "method_config": dataclasses.asdict(self.method_config),
            "dataset": self.dataset,
            "dataset_options": dict(sorted(self.dataset_options.items())),
            "protocol": protocol,
        }
        if self.method_cls.version > 1:  # a method whose behaviour changed: its old results are not reused
            identity["method_version"] = self.method_cls.version
        return identity

    @property
    def config_hash(self) -> str:
        return stable_hash(self.identity())

    @property
    def run_id(self) -> str:
        safe_dataset = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.dataset)
        return f"{self.method}__{safe_dataset}__seed{self.seed}__{self.config_hash}"

    @property
    def label(self) -> str:
        return f"{self.variant} on {self.dataset}, seed {self.seed}"
