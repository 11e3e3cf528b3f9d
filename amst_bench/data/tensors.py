"""In-memory tensor datasets and batching: decode once, then index tensors (no per-sample Python)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

MODALITIES = ("audio", "text", "visual")  # canonical, sorted order (as the official code sorts)


@dataclass
class TensorSplit:
    """One split: a tensor per modality (first dim = sample) and integer labels."""

    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor
    # Inputs after a preparer's once-per-split step, by preparer (see `settled`); shared by copies
    # of the split on the same device, so every run and epoch on it settles once.
    settled_inputs: dict[Any, dict[str, torch.Tensor]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> TensorSplit:
        inputs = {m: t.to(device) for m, t in self.inputs.items()}
        moved = any(inputs[m] is not t for m, t in self.inputs.items())
        return TensorSplit(inputs, self.labels.to(device), {} if moved else self.settled_inputs)

    def settled(self, prepare: Callable | None) -> dict[str, torch.Tensor]:
        """The inputs batches are cut from: `prepare.settle(inputs)` computed once (a preparer
        without `settle`, or none, uses the inputs as stored)."""
        settle = getattr(prepare, "settle", None)
        if settle is None:
            return self.inputs
        if prepare not in self.settled_inputs:
            self.settled_inputs[prepare] = settle(self.inputs)
        return self.settled_inputs[prepare]


@dataclass
class DatasetBundle:
    """What an adapter hands the trainer: splits, modalities and what identifies the data."""

    name: str
    modalities: tuple[str, ...]
    num_classes: int
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    class_names: tuple[str, ...] = ()
    split_name: str = "random-80/10/10"
    # Per-modality AMST skip parameters the paper used for this dataset.
    default_skip: dict[str, int] = field(default_factory=dict)
    # Input shape per modality (without batch), for building encoders.
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    # Stored tensors → encoder inputs on the device (`train` adds augmentation); None: as stored.
    prepare: Callable[[dict[str, torch.Tensor], bool], dict[str, torch.Tensor]] | None = None
    # The folder the files were read from: provenance recorded with each result, not identity.
    source: str | None = None
    # The adapter's resolved options (every `--set NAME.OPTION` value, defaults included).
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modalities": list(self.modalities),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "split": self.split_name,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "input_shapes": {m: list(s) for m, s in self.input_shapes.items()},
            "source": self.source,
            "options": dict(self.options),
            **self.info,
        }


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def iterate_batches(
    split: TensorSplit,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    prepare: Callable[[dict[str, torch.Tensor], bool], dict[str, torch.Tensor]] | None = None,
    train: bool = False,
) -> Iterator[Batch]:
    """Yield batches; shuffled when a generator is given. The last partial batch is kept.
    `prepare(inputs, train)` turns stored tensors into encoder inputs (see DatasetBundle)."""
    n = len(split)
    if generator is not None:
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    source = split.settled(prepare)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        inputs = {m: t[idx.to(t.device)] for m, t in source.items()}
        labels = split.labels[idx.to(split.labels.device)]
        if device is not None:
            inputs = {m: t.to(device, non_blocking=True) for m, t in inputs.items()}
            labels = labels.to(device, non_blocking=True)
        if prepare is not None:
            inputs = prepare(inputs, train)
        yield Batch(inputs, labels)


def num_batches(split: TensorSplit, batch_size: int) -> int:
    return (len(split) + batch_size - 1) // batch_size
