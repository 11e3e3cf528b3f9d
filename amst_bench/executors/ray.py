"""`--executor ray`: one Ray task per run (extra [ray]).

Each task trains one run with the same function as every executor and writes its files itself
into the results folder, which must be shared by the cluster's nodes. `--ray-address auto` or
HOST:PORT joins a running cluster; without it a Ray instance is started for the grid and stopped
after. A task whose worker dies is retried by Ray (--max-retries): the retry takes over the
run's lock and resumes from its last epoch checkpoint. An exception in a run is not retried (it
would fail again): it is a failed run, recorded with its log.
"""

from __future__ import annotations

from amst_bench.errors import Interrupted, UserError
from amst_bench.executors import NO_TRACKING, ExecutorSettings, require
from amst_bench.executors.job import RunJob, run_job
from amst_bench.executors.outcomes import Collector
from amst_bench.runner import GridOutcome


def _train(job: RunJob):
    return run_job(job)


class RayExecutor:
    name = "ray"

    def __init__(self, settings: ExecutorSettings):
        self.settings = settings
        self.ray = require("ray", "ray")

    def execute(self, specs, store, reporter, force, strict, locations, tracking=NO_TRACKING) -> GridOutcome:
        ray, s = self.ray, self.settings
        collector = Collector(reporter, strict)
        jobs = collector.plan(specs, store, locations, "ray", force, tracking)
        if not jobs:
            return collector.finish()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=s.ray_address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                collector.unqueue_unfinished()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                where = s.ray_address or "(a local instance)"
                raise UserError(f"--ray-address {where}: no Ray there ({first})") from None
        task = ray.remote(num_cpus=s.cpus_per_task, num_gpus=s.gpus_per_task, max_retries=s.max_retries,
                          retry_exceptions=False)(_train)
        waiting = {task.remote(job): job for job in jobs}
        try:
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1)
                for ref in ready:
                    job = waiting.pop(ref)
                    try:
                        collector.report(ray.get(ref))
                    except ray.exceptions.RayError as exc:  # its worker died more often than retried
                        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                        collector.fail(job, f"Ray task: {type(exc).__name__}: {first}", job.log)
        except KeyboardInterrupt:
            for ref in waiting:
                ray.cancel(ref, force=True)
            collector.unqueue_unfinished()
            raise Interrupted(
                "interrupted; runs in progress resume from their last epoch checkpoint; run the same "
                "command again to resume"
            ) from None
        finally:
            if started_here:
                ray.shutdown()
        return collector.finish()
