"""`--tensorboard`: one TensorBoard event folder per run, `<results>/tensorboard/<run id>/`, with every
scalar of `EpochRecord` per epoch (step = epoch), so curves can be watched while a grid trains."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amst_bench.report.results import RunResult
from amst_bench.report.tracking import EpochRecord, Tracker

if TYPE_CHECKING:
    from amst_bench.train.runspec import RunSpec


class TensorBoardTracker(Tracker):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.writer = None

    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.close()
        # purge_step hides, in TensorBoard, events of epochs >= first_epoch logged by an earlier
        # attempt (a resumed run redoes the epochs after its checkpoint; a --force redo starts at 0).
        self.writer = SummaryWriter(str(self.root / spec.run_id), purge_step=first_epoch)
        if first_epoch == 0:
            self.writer.add_text("run", f"{spec.label} [{spec.run_id}]", 0)

    def log_epoch(self, record: EpochRecord) -> None:
        if self.writer is None:
            return
        for tag, value in record.scalars().items():
            self.writer.add_scalar(tag, value, record.epoch)
        self.writer.flush()  # a run killed later keeps every epoch logged so far

    def end_run(self, result: RunResult) -> None:
        if self.writer is not None and result.test is not None:
            self.writer.add_scalar("selected/test_accuracy", result.test.accuracy, result.best_epoch)
            self.writer.add_scalar("selected/val_accuracy", result.best_val_acc, result.best_epoch)
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
