"""Progress display: a rich bar per run (epoch, loss, val acc, ETA) on a terminal; on anything
else (CI logs, pipes) one plain line per finished run and nothing per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from amst_bench.report.results import RunResult

if TYPE_CHECKING:
    from amst_bench.report.tracking import EpochRecord
    from amst_bench.train.runspec import RunSpec


class _Bar:
    """A transient rich bar, shown on a terminal only, with the columns `first`, the bar, n/N,
    `extra`, elapsed and remaining time; used as a context manager."""

    def __init__(self, console: Console, first: TextColumn, *extra: TextColumn):
        self.console = console
        self.progress = Progress(
            first,
            BarColumn(),
            MofNCompleteColumn(),
            *extra,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,
        )
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)


class RichReporter(_Bar):
    """Reports grid progress (implements amst_bench.train.trainer.EpochReporter); use as a context
    manager around a grid of runs."""

    def __init__(self, total_runs: int, console: Console | None = None):
        # Off a terminal (pipes, CI logs) lines are never wrapped: one finished run, one line.
        super().__init__(
            console or Console(stderr=True, soft_wrap=True),
            TextColumn("{task.description}", markup=False),
            TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  best {task.fields[best]}"),
        )
        self.interactive = self.console.is_terminal
        self.total_runs = total_runs
        self.done_runs = 0

    def start_run(self, spec: RunSpec, epochs: int, first_epoch: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        label = f"[{self.done_runs + 1}/{self.total_runs}] {spec.label}"
        if first_epoch:
            self._say(f"{label}: resumed from its checkpoint, {first_epoch}/{epochs} epochs done")
            label += f" (resumed at epoch {first_epoch})"
        self.task = self.progress.add_task(
            label, total=epochs, completed=first_epoch, loss="-", val="-", best="-"
        )

    def log_epoch(self, record: EpochRecord) -> None:
        """The bar shows loss and accuracy only (end_epoch); trackers take the whole record."""

    def end_epoch(self, epoch: int, train_loss: float, val_acc: float, best_val: float) -> None:
        self.progress.update(
            self.task, advance=1, loss=f"{train_loss:.3f}", val=f"{val_acc:.1%}", best=f"{best_val:.1%}"
        )

    def end_run(self, result: RunResult) -> None:
        self.done_runs += 1
        test = result.test.accuracy if result.test else float("nan")
        line = (
            f"[{self.done_runs}/{self.total_runs}] {result.variant} on {result.dataset}, "
            f"seed {result.seed}: test acc {test:.1%} at epoch {result.best_epoch}, "
            f"{result.seconds_per_epoch.epoch:.2f} s/epoch"
        )
        self._say(line)

    def skipped(self, spec: RunSpec) -> None:
        """Runs already stored are named but not counted: the counter counts runs that train."""
        self._say(f"done already: {spec.label} (--force redoes it)")

    def busy(self, spec: RunSpec) -> None:
        self.total_runs -= 1  # planned to train here, but another process has it
        self._say(f"left to another process: {spec.label} (it is training it now)")

    def unsupported(self, spec: RunSpec, reason: str) -> None:
        """A method that cannot run on the dataset: not counted (the CLI names it once at the end)."""
        self.total_runs -= 1

    def _say(self, line: str) -> None:
        """One plain line: variant labels like `amst-alt[skip_enabled=False]` are not markup."""
        self.console.print(line, highlight=False, markup=False)


class DecodeProgress(_Bar):
    """A bar while a dataset is decoded into its cache (terminal only; silent otherwise)."""

    def __init__(self, label: str, console: Console | None = None):
        super().__init__(console or Console(stderr=True), TextColumn(label))

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("decode", total=total)
        self.progress.update(self.task, completed=done)
