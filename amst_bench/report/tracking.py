"""Experiment tracking: what one epoch reports to TensorBoard / W&B (`EpochRecord`, one tag per
scalar, named once here so both trackers agree), and `FanOut`, which hands every reporter call
to several reporters (the progress bar plus the trackers a grid command asked for)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amst_bench.errors import UserError
from amst_bench.report.results import RunResult

if TYPE_CHECKING:
    from amst_bench.train.runspec import RunSpec


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch as the trainer saw it (the same numbers it stores in the result's curves;
    the validation utilisation is the only one the curves do not keep)."""

    epoch: int
    train_loss: float
    train_acc: float | None
    val_acc: float
    val_macro_f1: float
    test_acc: float | None
    val_modality_acc: dict[str, float | None]  # linear probes, as in the leaderboards
    val_head_modality_acc: dict[str, float | None]  # the method's own per-modality logits, if any
    learning_rates: dict[str, float]  # per optimiser (and param group)
    modalities: tuple[str, ...]
    trained: tuple[str, ...]  # the modalities whose encoders trained this epoch
    val_shapley: dict[str, float | None] = field(default_factory=dict)
    val_shapley_imbalance: float | None = None
    val_utilisation: dict[str, float | None] = field(default_factory=dict)
    train_seconds: float | None = None
    epoch_seconds: float | None = None

    def scalars(self) -> dict[str, float]:
        """Tag -> value; values that were not measured this epoch are left out."""
        tags: dict[str, Any] = {
            "loss/train": self.train_loss,
            "accuracy/train": self.train_acc,
            "accuracy/val": self.val_acc,
            "macro_f1/val": self.val_macro_f1,
            "accuracy/test": self.test_acc,
            "balance/shapley_imbalance": self.val_shapley_imbalance,
            "seconds/train": self.train_seconds,
            "seconds/epoch": self.epoch_seconds,
        }
        for m in self.modalities:
            tags[f"modality_accuracy/val/{m}"] = self.val_modality_acc.get(m)
            tags[f"head_modality_accuracy/val/{m}"] = self.val_head_modality_acc.get(m)
            tags[f"trained/{m}"] = 1.0 if m in self.trained else 0.0
            tags[f"balance/shapley/{m}"] = self.val_shapley.get(m)
            tags[f"balance/utilisation/{m}"] = self.val_utilisation.get(m)
        for name, lr in self.learning_rates.items():
            tags[f"learning_rate/{name}"] = lr
        return {tag: float(v) for tag, v in tags.items() if v is not None}


class FanOut:
    """Every reporter call passed on to each reporter in turn (implements EpochReporter)."""

    def __init__(self, *reporters: Any):
        self.reporters = reporters

    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None:
        for r in self.reporters:
            r.start_run(spec, epochs, first_epoch)

    def log_epoch(self, record: EpochRecord) -> None:
        for r in self.reporters:
            r.log_epoch(record)

    def end_epoch(self, epoch: int, train_loss: float, val_acc: float, best_val: float) -> None:
        for r in self.reporters:
            r.end_epoch(epoch, train_loss, val_acc, best_val)

    def end_run(self, result: RunResult) -> None:
        for r in self.reporters:
            r.end_run(result)

    def skipped(self, spec: RunSpec) -> None:
        for r in self.reporters:
            r.skipped(spec)

    def busy(self, spec: RunSpec) -> None:
        for r in self.reporters:
            r.busy(spec)

    def unsupported(self, spec: RunSpec, reason: str) -> None:
        for r in self.reporters:
            r.unsupported(spec, reason)


class Tracker:
    """Base of the trackers: a reporter that only logs runs (grid bookkeeping calls do nothing);
    subclasses open a run in `start_run`, log in `log_epoch`, close in `end_run` / `close`."""

    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None: ...
    def log_epoch(self, record: EpochRecord) -> None: ...
    def end_epoch(self, epoch: int, train_loss: float, val_acc: float, best_val: float) -> None: ...
    def end_run(self, result: RunResult) -> None: ...
    def skipped(self, spec: RunSpec) -> None: ...
    def busy(self, spec: RunSpec) -> None: ...
    def unsupported(self, spec: RunSpec, reason: str) -> None: ...
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def require(module: str, flag: str, extra: str) -> None:
    """One line, before anything trains, when an optional tracker's package is missing."""
    if importlib.util.find_spec(module) is None:
        raise UserError(f"{flag}: {module} is not installed; install amst-bench[{extra}]")


def trackers(results: Path, tensorboard: bool, wandb: bool) -> list[Tracker]:
    """The trackers a grid command asked for, logging under its results folder."""
    out: list[Tracker] = []
    if tensorboard:
        require("tensorboard", "--tensorboard", "tensorboard")
        from amst_bench.report.tensorboard import TensorBoardTracker

        out.append(TensorBoardTracker(results / "tensorboard"))
    if wandb:
        require("wandb", "--wandb", "wandb")
        from amst_bench.report.wandb_offline import WandbOfflineTracker

        out.append(WandbOfflineTracker(results / "wandb"))
    return out
