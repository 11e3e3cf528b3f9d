"""The coordinator's side, shared by the executors that hand runs to workers: turn each worker's
`JobReport` into the grid's outcome and the terminal's lines, as the in-process loop reports them."""

from __future__ import annotations

from amst_bench.errors import UserError
from amst_bench.executors import NO_TRACKING, records
from amst_bench.executors.job import JobReport, RunJob
from amst_bench.runner import GridOutcome


class Collector:
    def __init__(self, reporter, strict: bool):
        self.jobs: dict[str, RunJob] = {}
        self.reporter = reporter
        self.strict = strict
        self.outcome = GridOutcome()
        self.done: set[str] = set()

    def plan(self, specs, store, locations, executor: str, force: bool, tracking=NO_TRACKING) -> list[RunJob]:
        """The jobs to hand out, each recorded as queued; runs stored already are reported as
        the local loop reports them, and not handed out."""
        store.ensure_writable()
        todo = []
        for spec in specs:
            job = RunJob.make(spec, store, locations, executor, force, tracking)
            self.jobs[spec.run_id] = job
            if store.has_result(spec.run_id) and not force:
                self.outcome.skipped.append(spec)
                self.reporter.skipped(spec)
            else:
                records.mark_queued(store.root, records.RunRecord.of(spec, executor, job.log))
                todo.append(job)
        return todo

    def unqueue_unfinished(self) -> None:
        """Jobs this coordinator will no longer run (it was interrupted) are not queued anywhere."""
        for run_id, job in self.jobs.items():
            if run_id not in self.done:
                records.unqueue(job.results, run_id)

    def report(self, report: JobReport) -> None:
        """One job's end (a job reported twice, e.g. by a retry, counts once)."""
        if report.run_id in self.done:
            return
        self.done.add(report.run_id)
        job = self.jobs[report.run_id]
        spec, outcome, reporter = job.spec, self.outcome, self.reporter
        if report.state == "finished":
            reporter.start_run(spec, report.result.protocol["epochs"], report.resumed_at)
            reporter.end_run(report.result)
            outcome.results.append(report.result.to_json())
        elif report.state == "skipped":
            outcome.skipped.append(spec)
            reporter.skipped(spec)
        elif report.state == "busy":
            outcome.busy.append(spec)
            reporter.busy(spec)
        elif report.state == "unsupported":
            outcome.unsupported.append((spec, report.message))
            reporter.unsupported(spec, report.message)
        else:
            outcome.failed.append((spec, _as_dict(report.record)))

    def fail(self, job: RunJob, error: str, log) -> None:
        """A run its engine gave up on (its worker died more times than allowed, a job lost)."""
        record = records.RunRecord.of(job.spec, job.executor, log, error)
        records.mark_failed(job.results, record)
        self.report(JobReport(job.spec.run_id, "failed", message=error, record=record))

    def finish(self) -> GridOutcome:
        """The outcome; under a strict grid (methods named explicitly) an unsupported pair is the
        error a local run raises."""
        if self.strict and self.outcome.unsupported:
            raise UserError(self.outcome.unsupported[0][1])
        return self.outcome


def _as_dict(record: records.RunRecord | None) -> dict:
    import dataclasses

    return dataclasses.asdict(record) if record is not None else {}
