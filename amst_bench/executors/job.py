"""One run as a unit of work for any executor: a picklable `RunJob` and `run_job`, which every
worker (pool process, Slurm task, Ray task) calls. It runs the runner's own loop on the one spec,
so the files it writes are those a local run writes, under the same per-run lock."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amst_bench.data.refs import DataLocations
from amst_bench.errors import Interrupted, UnsupportedDataset
from amst_bench.executors import records
from amst_bench.report.results import ResultStore, RunResult
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import SilentReporter

# A worker process keeps the datasets it has loaded for the runs it is handed next.
_LOADED: dict[Any, Any] = {}


@dataclass(frozen=True)
class RunJob:
    spec: RunSpec
    results: Path  # absolute: a worker may start in another folder
    locations: DataLocations
    executor: str
    force: bool = False
    checkpoint_every: int = 1
    tracking: tuple[bool, bool] = (False, False)  # --tensorboard, --wandb: this process logs the run

    @property
    def log(self) -> Path:
        """This run's own log (its worker's output while it trains it)."""
        return run_log_path(self.results, self.spec.run_id)

    @classmethod
    def make(cls, spec: RunSpec, store: ResultStore, locations: DataLocations, executor: str,
             force: bool, tracking: tuple[bool, bool] = (False, False)) -> RunJob:
        spec = dataclasses.replace(spec, dataset_path=_absolute(spec.dataset_path))
        locations = dataclasses.replace(
            locations, data_root=_absolute(locations.data_root), cache_dir=_absolute(locations.cache_dir)
        )
        return cls(spec, store.root.resolve(), locations, executor, force, tracking=tracking)


def run_log_path(results: Path, run_id: str) -> Path:
    return Path(results) / "logs" / "runs" / f"{run_id}.log"


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(path).resolve()


@dataclass
class JobReport:
    """What became of a job: finished | skipped (stored already) | busy (another process has it)
    | unsupported | failed (`record` says why and where the log is)."""

    run_id: str
    state: str
    result: RunResult | None = None
    resumed_at: int = 0  # the epoch a resumed run started from
    message: str = ""
    record: records.RunRecord | None = None


class _Recorder(SilentReporter):
    """The reporter a worker trains with: keeps what the coordinator reports, and writes a line
    per epoch into the run's log."""

    def __init__(self):
        self.first_epoch = 0
        self.result: RunResult | None = None

    def start_run(self, spec, epochs, first_epoch):
        self.first_epoch = first_epoch
        print(f"{spec.label}: epochs {first_epoch}..{epochs - 1}", flush=True)

    def end_epoch(self, epoch, train_loss, val_acc, best_val):
        print(f"epoch {epoch}: loss {train_loss:.4f}, val {val_acc:.2%}, best {best_val:.2%}", flush=True)

    def end_run(self, result):
        self.result = result


def run_job(job: RunJob, log: Path | None = None) -> JobReport:
    """Train one run (or find it done or taken). Its output goes to `log` (default: the run's own
    log); an exception is a failed run, recorded with that log, never raised to the engine (which
    would retry a deterministic failure). A killed worker is the engine's to retry: the retry
    takes over the lock and resumes from the checkpoint."""
    from amst_bench.runner import execute

    log = Path(log) if log is not None else job.log
    spec, store = job.spec, ResultStore(job.results)
    recorder = _Recorder()
    with output_to(log), contextlib.ExitStack() as tracked:
        try:
            reporter = _reporter(recorder, job, tracked)
            outcome = execute([spec], store, reporter, force=job.force, checkpoint_every=job.checkpoint_every,
                              strict=True, locations=job.locations, datasets=_LOADED)
        except UnsupportedDataset as exc:
            records.unqueue(store.root, spec.run_id)
            return JobReport(spec.run_id, "unsupported", message=str(exc))
        except Interrupted:  # stopped, not failed: it resumes from its checkpoint
            raise
        except Exception as exc:
            traceback.print_exc()
            first = (str(exc).splitlines() or [""])[0]
            record = records.RunRecord.of(spec, job.executor, log, f"{type(exc).__name__}: {first}")
            records.mark_failed(store.root, record)
            return JobReport(spec.run_id, "failed", message=record.error, record=record)
    if outcome.results:
        records.mark_finished(store.root, spec.run_id)
        return JobReport(spec.run_id, "finished", recorder.result, recorder.first_epoch)
    if outcome.skipped:
        records.mark_finished(store.root, spec.run_id)
        return JobReport(spec.run_id, "skipped")
    records.unqueue(store.root, spec.run_id)  # another process trains it; its lock says so
    return JobReport(spec.run_id, "busy")


def _reporter(recorder: _Recorder, job: RunJob, stack: contextlib.ExitStack):
    """The recorder, plus the trackers the grid asked for (they log each epoch, so they live where
    the run trains)."""
    if not any(job.tracking):
        return recorder
    from amst_bench.report.tracking import FanOut, trackers

    return FanOut(recorder, *(stack.enter_context(t) for t in trackers(job.results, *job.tracking)))


@contextlib.contextmanager
def output_to(log: Path):
    """stdout and stderr (the file descriptors, so library output too) appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", buffering=1) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
