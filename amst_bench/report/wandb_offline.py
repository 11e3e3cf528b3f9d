"""`--wandb`: Weights & Biases in offline mode (nothing leaves the machine; `wandb sync` uploads
later), one W&B run per amst-bench run under `<results>/wandb/`, the same scalars as TensorBoard."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from amst_bench.report.results import RunResult
from amst_bench.report.tracking import EpochRecord, Tracker

if TYPE_CHECKING:
    from amst_bench.train.runspec import RunSpec

PROJECT = "amst-bench"


class WandbOfflineTracker(Tracker):
    def __init__(self, root: Path):
        self.root = Path(root)
        self.run = None

    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None:
        import wandb

        self.close()
        os.environ["WANDB_MODE"] = "offline"
        self.root.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=PROJECT,
            dir=str(self.root),
            mode="offline",
            id=spec.run_id,
            name=spec.label,
            resume="allow",
            reinit=True,
            config={
                "variant": spec.variant,
                "dataset": spec.dataset,
                "seed": spec.seed,
                "profile": spec.protocol.profile,
                "overrides": dict(spec.overrides),
            },  # the same on every attempt: a resumed W&B run may not change its config
        )

    def log_epoch(self, record: EpochRecord) -> None:
        if self.run is not None:
            self.run.log({"epoch": record.epoch, **record.scalars()}, step=record.epoch)

    def end_run(self, result: RunResult) -> None:
        if self.run is not None and result.test is not None:
            self.run.summary.update(
                {"selected/test_accuracy": result.test.accuracy, "selected/epoch": result.best_epoch}
            )
        self.close()

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
