"""`--executor local:N`: N worker processes on this machine take the grid's runs one at a time.

The coordinator hands each worker one run at a time (so it always knows which run a worker has);
the per-run lock still keeps any other `amst-bench` process off it. A worker that dies (killed,
out of memory) has its run handed out again, up to --max-retries times: the new holder takes
over the lock the kernel released and resumes from the run's last checkpoint. On CUDA each
worker sees one GPU (CUDA_VISIBLE_DEVICES), --workers-per-gpu K of them per GPU; on the CPU
the workers split the cores between them (torch threads), unless the profile fixes the count.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass

from amst_bench.errors import Interrupted, UserError
from amst_bench.executors import NO_TRACKING
from amst_bench.executors.job import RunJob, run_job
from amst_bench.executors.outcomes import Collector
from amst_bench.runner import GridOutcome

_POLL_S = 0.2
_ORPHAN_POLL_S = 1.0


@dataclass(frozen=True)
class Slot:
    """What one worker process is pinned to."""

    index: int
    gpu: int | None  # None: the CPU
    threads: int


def plan_slots(workers: int, per_gpu: int, gpus: int, cores: int) -> list[Slot]:
    """Worker i gets GPU i // per_gpu when there are GPUs; without, cores // workers threads."""
    if gpus:
        needed = -(-workers // per_gpu)
        if needed > gpus:
            raise UserError(
                f"--executor local:{workers} with --workers-per-gpu {per_gpu} needs {needed} GPU(s); "
                f"{gpus} visible"
            )
        return [Slot(i, i // per_gpu, max(1, cores // workers)) for i in range(workers)]
    return [Slot(i, None, max(1, cores // workers)) for i in range(workers)]


def _exit_when_orphaned(coordinator: int) -> None:
    """Watch the coordinator from a daemon thread and end this worker when it is gone (killed with
    SIGKILL or SIGTERM, it cannot tell its workers): otherwise they would wait on their inbox, or
    train on, forever. A run cut short so resumes from its checkpoint, as after any kill."""

    def watch() -> None:
        while os.getppid() == coordinator:
            time.sleep(_ORPHAN_POLL_S)
        os._exit(3)

    threading.Thread(target=watch, name="amst-bench-orphan-watch", daemon=True).start()


def _worker(slot: Slot, inbox, events, coordinator: int) -> None:
    """A worker process: pinned once, then one job at a time until it is told to stop, or until
    its coordinator is gone."""
    _exit_when_orphaned(coordinator)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the coordinator's to handle
    if slot.gpu is not None:  # before torch touches CUDA; the GPUs the user left visible, in order
        visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[slot.gpu] if visible else str(slot.gpu)
    import torch

    torch.set_num_threads(slot.threads)
    while (job := inbox.get()) is not None:
        events.put(run_job(job))


class PoolExecutor:
    name = "local:N"

    def __init__(self, workers: int, per_gpu: int = 1, max_retries: int = 2):
        self.workers = workers
        self.per_gpu = per_gpu
        self.max_retries = max_retries

    def execute(self, specs, store, reporter, force, strict, locations, tracking=NO_TRACKING) -> GridOutcome:
        collector = Collector(reporter, strict)
        jobs = collector.plan(specs, store, locations, f"local:{self.workers}", force, tracking)
        if jobs:
            self._run(jobs, specs, collector)
        return collector.finish()

    def _slots(self, specs) -> list[Slot]:
        import torch

        from amst_bench.train.environment import resolve_device

        cuda = any(resolve_device(s.protocol.device).type == "cuda" for s in specs)
        gpus = torch.cuda.device_count() if cuda else 0
        return plan_slots(self.workers, self.per_gpu, gpus, os.cpu_count() or 1)

    def _run(self, jobs: list[RunJob], specs, collector: Collector) -> None:
        context = multiprocessing.get_context("spawn")  # fresh interpreters: CUDA-safe, no forked locks
        events = context.Queue()
        slots = self._slots(specs)[: len(jobs)]
        pending = deque(jobs)
        attempts: Counter[str] = Counter()
        workers: dict[int, tuple] = {}  # slot index → (process, inbox)
        holding: dict[int, RunJob | None] = {}
        interrupted = False

        def start(slot: Slot) -> None:
            inbox = context.Queue()
            process = context.Process(target=_worker, args=(slot, inbox, events, os.getpid()), daemon=True,
                                      name=f"amst-bench-worker-{slot.index}")
            process.start()
            workers[slot.index] = (process, inbox)
            holding[slot.index] = None

        try:
            for slot in slots:
                start(slot)
            while pending or any(holding.values()):
                self._replace_dead(slots, workers, holding, pending, attempts, collector, start)
                for index, (process, inbox) in workers.items():
                    if holding[index] is None and pending and process.is_alive():
                        holding[index] = pending.popleft()
                        attempts[holding[index].spec.run_id] += 1
                        inbox.put(holding[index])
                try:
                    report = events.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                for index, job in holding.items():
                    if job is not None and job.spec.run_id == report.run_id:
                        holding[index] = None
                collector.report(report)
        except KeyboardInterrupt:
            interrupted = True
            done = len(collector.outcome.results)
            raise Interrupted(
                f"interrupted; {done} run(s) finished in this session are kept in {jobs[0].results}; "
                "runs in progress resume from their last epoch checkpoint; run the same command again "
                "to resume"
            ) from None
        finally:
            collector.unqueue_unfinished()
            for process, inbox in workers.values():
                if process.is_alive() and interrupted:  # stop now: the run resumes from its checkpoint
                    process.terminate()
                elif process.is_alive():
                    inbox.put(None)
            for process, _ in workers.values():
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join()

    def _replace_dead(self, slots, workers, holding, pending, attempts, collector, start) -> None:
        """A dead worker's run goes back to the front of the queue (it resumes from its
        checkpoint), or is recorded as failed once it has used up its retries."""
        for slot in slots:
            process, _ = workers[slot.index]
            if process.is_alive():
                continue
            job = holding[slot.index]
            if job is not None:
                why = f"its worker process died (exit code {process.exitcode})"
                if attempts[job.spec.run_id] > self.max_retries:
                    collector.fail(job, f"{why}, {attempts[job.spec.run_id]} time(s)", job.log)
                else:
                    pending.appendleft(job)
            if pending:
                start(slot)
            else:
                holding[slot.index] = None
                workers[slot.index] = (_Gone(), None)


class _Gone:
    """A finished slot's place holder: not alive, nothing to join."""

    exitcode = 0

    def is_alive(self) -> bool:
        return False

    def join(self, timeout=None) -> None:
        pass
