"""What `status` knows of runs handed to an executor, beside the results and checkpoints:

  queue/<run_id>.json    submitted to an executor and not finished (removed when it finishes)
  failed/<run_id>.json   the run raised or its worker died for good: the error and its log

Both are written atomically; a later success of the run removes its failure record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from amst_bench.atomic import atomic_write_json

if TYPE_CHECKING:  # `status` reads records without importing torch
    from amst_bench.train.runspec import RunSpec


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    label: str  # "variant on dataset, seed N"
    protocol_label: str
    executor: str
    log: str | None  # where the run's output goes
    when: str
    error: str | None = None  # failed records: one line
    job: str | None = None  # the engine's id for it (Slurm job id, Ray task id)

    @classmethod
    def of(cls, spec: RunSpec, executor: str, log: Path | str | None, error: str | None = None,
           job: str | None = None) -> RunRecord:
        from amst_bench.train.runspec import protocol_label

        return cls(spec.run_id, spec.label, protocol_label(spec.protocol, spec.overrides), executor,
                   None if log is None else str(log), datetime.now(UTC).isoformat(timespec="seconds"),
                   error, job)

    def line(self) -> str:
        where = f"; log: {self.log}" if self.log else ""
        return f"{self.label} [{self.protocol_label}] ({self.executor}{where})"


def queue_dir(root: Path) -> Path:
    return Path(root) / "queue"


def failed_dir(root: Path) -> Path:
    return Path(root) / "failed"


def mark_queued(root: Path, record: RunRecord) -> None:
    atomic_write_json(queue_dir(root) / f"{record.run_id}.json", asdict(record))


def mark_failed(root: Path, record: RunRecord) -> None:
    atomic_write_json(failed_dir(root) / f"{record.run_id}.json", asdict(record))
    unqueue(root, record.run_id)


def unqueue(root: Path, run_id: str) -> None:
    (queue_dir(root) / f"{run_id}.json").unlink(missing_ok=True)


def mark_finished(root: Path, run_id: str) -> None:
    unqueue(root, run_id)
    (failed_dir(root) / f"{run_id}.json").unlink(missing_ok=True)


def read(folder: Path, warn=print) -> list[RunRecord]:
    """The readable records of a folder; a damaged one (not written by amst-bench: every write is
    atomic) is named in one warning line and left out."""
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(RunRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError) as exc:
            warn(f"amst-bench: warning: {path}: skipped: not a run record ({type(exc).__name__})")
    return records
