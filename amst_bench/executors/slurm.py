"""`--executor slurm`: the grid as one Slurm job array through submitit (extra [slurm]).

Each array task trains one run with the same function as every executor. A task is
`submitit.helpers.Checkpointable`: on preemption or time-out Slurm signals it, submitit requeues
it, and the requeued task resumes the run from its last epoch checkpoint (the trainer writes one
after every epoch; nothing else needs saving). Logs go under <results>/logs/slurm/. The command
waits for the array and reports each run as it ends; a task that fails is a failed run, recorded
with its log. `--slurm-cluster local` runs the same array as subprocesses of this machine
(submitit's LocalExecutor), to try a set-up without a cluster.
"""

from __future__ import annotations

import shutil
import time

from amst_bench.errors import Interrupted, UserError
from amst_bench.executors import NO_TRACKING, ExecutorSettings, require
from amst_bench.executors.job import JobReport, RunJob, run_job
from amst_bench.executors.outcomes import Collector
from amst_bench.runner import GridOutcome

_POLL_S = 0.5

try:  # the class must exist at import time for the job's pickle; without submitit, a plain base
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - `make_executor` says what to install before this matters
    _Checkpointable = object


class TrainRun(_Checkpointable):
    """One array task. `checkpoint()` (inherited) resubmits the same call: the run's own epoch
    checkpoint carries the progress."""

    def __call__(self, job: RunJob) -> JobReport:
        return run_job(job, log=job.log)


class SlurmExecutor:
    name = "slurm"

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings
        self.submitit = require("submitit", "slurm")
        if settings.slurm_cluster == "slurm" and shutil.which("sbatch") is None:
            raise UserError(
                "--executor slurm: no `sbatch` on this machine's PATH (run it on a Slurm login node, or "
                "--slurm-cluster local to try the job array as local subprocesses)"
            )

    def _executor(self, folder):
        s = self.settings
        executor = self.submitit.AutoExecutor(folder=str(folder / "%j"), cluster=s.slurm_cluster,
                                              slurm_max_num_timeout=s.max_retries,
                                              local_max_num_timeout=s.max_retries)
        params = {"name": "amst-bench", "timeout_min": s.time_limit_min, "cpus_per_task": s.cpus_per_task,
                  "tasks_per_node": 1, "nodes": 1}
        if s.slurm_cluster == "slurm":
            params["slurm_additional_parameters"] = {"requeue": True}
            if s.slurm_partition:
                params["slurm_partition"] = s.slurm_partition
            if s.gpus_per_task:
                params["slurm_gpus_per_task"] = s.gpus_per_task
        elif s.gpus_per_task:
            params["gpus_per_node"] = s.gpus_per_task
        executor.update_parameters(**params)
        return executor

    def execute(self, specs, store, reporter, force, strict, locations, tracking=NO_TRACKING) -> GridOutcome:
        collector = Collector(reporter, strict)
        jobs = collector.plan(specs, store, locations, "slurm", force, tracking)
        if not jobs:
            return collector.finish()
        executor = self._executor(store.root.resolve() / "logs" / "slurm")
        submitted = executor.map_array(TrainRun(), jobs)
        try:
            self._wait(list(zip(jobs, submitted, strict=True)), collector)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; the Slurm jobs keep running (`amst-bench status --results-dir {store.root}` "
                f"shows them; `scancel` stops them)"
            ) from None
        return collector.finish()

    def _wait(self, waiting: list, collector: Collector) -> None:
        while waiting:
            for job, task in list(waiting):
                if not task.done():
                    continue
                waiting.remove((job, task))
                try:
                    collector.report(task.result())
                except Exception as exc:  # the task died (killed, out of time for good, node lost)
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log = task.paths.stderr if task.paths.stderr.exists() else task.paths.stdout
                    collector.fail(job, f"Slurm job {task.job_id}: {first}", log)
            if waiting:
                time.sleep(_POLL_S)
