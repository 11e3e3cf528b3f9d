"""Executors: who trains the runs of a grid. Every executor hands each run spec to the same
function (`job.run_job`, which calls the runner's in-process loop on that one spec), so a run
trained anywhere writes the same files as a local run; the per-run lock, resume from checkpoints
and atomic writes hold whatever the executor.

  local      the in-process loop (default)
  local:N    N worker processes on this machine (pool.py)
  slurm      a Slurm job array through submitit (slurm.py; extra [slurm])
  ray        one Ray task per run (ray.py; extra [ray])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from amst_bench.errors import UserError

if TYPE_CHECKING:
    from amst_bench.data.refs import DataLocations
    from amst_bench.report.results import ResultStore
    from amst_bench.runner import GridOutcome
    from amst_bench.train.runspec import RunSpec
    from amst_bench.train.trainer import EpochReporter

NAMES = ("local", "local:N", "slurm", "ray")
NO_TRACKING = (False, False)  # (--tensorboard, --wandb)


class Executor(Protocol):
    name: str

    def execute(
        self,
        specs: list[RunSpec],
        store: ResultStore,
        reporter: EpochReporter,
        force: bool,
        strict: bool,
        locations: DataLocations,
        tracking: tuple[bool, bool] = NO_TRACKING,  # logged by the process that trains the run
    ) -> GridOutcome: ...


@dataclass(frozen=True)
class ExecutorSettings:
    """The executor flags of `amst-bench run`, checked before anything is trained."""

    name: str = "local"
    workers: int = 1  # local:N
    workers_per_gpu: int = 1
    max_retries: int = 2  # a run whose worker dies is retried (resuming) this many times
    slurm_partition: str | None = None
    slurm_cluster: str = "slurm"  # submitit's cluster: slurm, or local (subprocesses here, to try it)
    gpus_per_task: int = 0
    time_limit_min: int = 60 * 24
    cpus_per_task: int = 1
    ray_address: str | None = None  # None: a Ray instance started for this grid

    @classmethod
    def parse(cls, executor: str, **flags) -> ExecutorSettings:
        name, _, count = executor.strip().partition(":")
        if name not in ("local", "slurm", "ray") or (count and name != "local"):
            raise UserError(f"--executor {executor!r}: expected one of {', '.join(NAMES)}")
        workers = 1
        if count:
            if not count.isdigit() or int(count) < 1:
                raise UserError(f"--executor {executor!r}: N in local:N must be a whole number ≥ 1")
            workers = int(count)
        settings = cls(name=name, workers=workers, **flags)
        settings.check()
        return settings

    def check(self) -> None:
        for flag, value, least in (("--workers-per-gpu", self.workers_per_gpu, 1),
                                   ("--max-retries", self.max_retries, 0),
                                   ("--gpus-per-task", self.gpus_per_task, 0),
                                   ("--time-limit", self.time_limit_min, 1),
                                   ("--cpus-per-task", self.cpus_per_task, 1)):
            if value < least:
                raise UserError(f"{flag} {value}: expected a whole number ≥ {least}")
        if self.slurm_cluster not in ("slurm", "local"):
            raise UserError(f"--slurm-cluster {self.slurm_cluster!r}: expected slurm or local")
        given = {"--slurm-partition": self.slurm_partition is not None, "--ray-address": self.ray_address}
        wrong = {"--slurm-partition": "slurm", "--ray-address": "ray"}
        for flag, present in given.items():
            if present and self.name != wrong[flag]:
                raise UserError(f"{flag} applies to --executor {wrong[flag]}, not {self.name}")

    @property
    def in_process(self) -> bool:
        return self.name == "local" and self.workers == 1


def make_executor(settings: ExecutorSettings) -> Executor:
    """The executor the settings name; its engine is imported only here (a missing optional
    extra is one line saying which to install)."""
    if settings.name == "local":
        if settings.workers == 1:
            from amst_bench.executors.local import LocalExecutor

            return LocalExecutor()
        from amst_bench.executors.pool import PoolExecutor

        return PoolExecutor(settings.workers, settings.workers_per_gpu, settings.max_retries)
    if settings.name == "slurm":
        from amst_bench.executors.slurm import SlurmExecutor

        return SlurmExecutor(settings)
    from amst_bench.executors.ray import RayExecutor

    return RayExecutor(settings)


def require(module: str, extra: str):
    """Import an optional engine, or say in one line which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"--executor {extra}: {module} is not installed; install amst-bench[{extra}] "
            f"(pip install 'amst-bench[{extra}]')"
        ) from None
