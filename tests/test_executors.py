"""Executors (issue 12): flags and bad inputs, status of runs handed out (quick); then the real
engines (integration): local:N worker processes, submitit's LocalExecutor (a job array of real
subprocesses, one preempted mid-run and requeued), a local Ray instance (a worker killed mid-run,
the task retried). Each grid must write the results a local run writes, byte for byte in every
measured number, and a run that was cut short must resume from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from amst_bench.errors import UserError
from amst_bench.executors import ExecutorSettings, records, require
from amst_bench.executors.pool import Slot, plan_slots
from amst_bench.locks import RunLock, is_held
from tests.helpers import cli

# ----------------------------------------------------------------------------- quick: flags, status


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "foo"], "--executor 'foo': expected one of local, local:N, slurm, ray"),
        (["--executor", "local:0"], "--executor 'local:0': N in local:N must be a whole number ≥ 1"),
        (["--executor", "local:two"], "--executor 'local:two': N in local:N must be a whole number ≥ 1"),
        (["--executor", "ray:2"], "--executor 'ray:2': expected one of local, local:N, slurm, ray"),
        (["--executor", "local:2", "--workers-per-gpu", "0"],
         "--workers-per-gpu 0: expected a whole number ≥ 1"),
        (["--executor", "ray", "--max-retries", "-1"], "--max-retries -1: expected a whole number ≥ 0"),
        (["--executor", "slurm", "--slurm-cluster", "aws"], "--slurm-cluster 'aws': expected slurm or local"),
        (["--executor", "ray", "--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm"),
        (["--executor", "local:2", "--ray-address", "auto"], "--ray-address applies to --executor ray"),
    ],
    ids=["unknown", "local-0", "local-not-a-number", "count-on-ray", "workers-per-gpu-0", "retries-negative",
         "unknown-submitit-cluster", "partition-without-slurm", "ray-address-without-ray"],
)
def test_a_bad_executor_flag_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    code = cli("run", "--methods", "naive", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), *args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"amst-bench: error: {err.strip().split('error: ', 1)[1]}"]
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_executor_names_parse():
    assert ExecutorSettings.parse("local").in_process
    assert ExecutorSettings.parse("local:1").in_process
    pool = ExecutorSettings.parse(" local:3 ", workers_per_gpu=2)
    assert (pool.name, pool.workers, pool.workers_per_gpu, pool.in_process) == ("local", 3, 2, False)
    assert ExecutorSettings.parse("slurm", slurm_partition="gpu").slurm_partition == "gpu"
    assert ExecutorSettings.parse("ray", ray_address="auto").ray_address == "auto"


def test_workers_are_pinned_one_gpu_per_k_workers_or_split_the_cores():
    assert plan_slots(4, 2, gpus=2, cores=16) == [Slot(0, 0, 4), Slot(1, 0, 4), Slot(2, 1, 4), Slot(3, 1, 4)]
    assert [s.gpu for s in plan_slots(3, 1, gpus=4, cores=8)] == [0, 1, 2]
    assert plan_slots(2, 1, gpus=0, cores=2) == [Slot(0, None, 1), Slot(1, None, 1)]
    assert plan_slots(3, 1, gpus=0, cores=2)[0].threads == 1  # never 0 threads
    with pytest.raises(UserError, match=r"local:3 with --workers-per-gpu 1 needs 3 GPU\(s\); 2 visible"):
        plan_slots(3, 1, gpus=2, cores=8)


@pytest.mark.parametrize(("module", "extra"), [("ray", "ray"), ("submitit", "slurm")])
def test_a_missing_engine_says_which_extra_to_install(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    expected = rf"--executor {extra}: {module} is not installed; install amst-bench\[{extra}\]"
    with pytest.raises(UserError, match=expected):
        require(module, extra)


def test_slurm_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    code = cli("run", "--methods", "naive", "--profile", "smoke", "--set", "epochs=1", "--seeds", "0",
               "--results-dir", str(tmp_path / "r"), "--executor", "slurm", "--no-leaderboard")
    err = capsys.readouterr().err
    assert code == 2 and "--executor slurm: no `sbatch` on this machine's PATH" in err
    assert "Traceback" not in err and not list((tmp_path / "r").glob("runs/*.json"))


def _record(run_id: str, **fields) -> records.RunRecord:
    return records.RunRecord(run_id, f"naive on synthetic, seed {run_id[-1]}", "smoke", "ray",
                             f"/logs/{run_id}.log", "2026-01-01T00:00:00+00:00", **fields)


def test_status_shows_running_queued_and_failed_runs(tmp_path, capsys):
    root = tmp_path / "r"
    for run_id in ("run0", "run1", "run2"):
        records.mark_queued(root, _record(run_id))
    records.mark_failed(root, _record("run2", error="RuntimeError: boom"))
    with RunLock(root / "locks" / "run1.lock") as held:  # run1 is being trained now
        assert held and is_held(root / "locks" / "run1.lock")
        assert cli("status", "--results-dir", str(root)) == 0
    out = capsys.readouterr().out.splitlines()
    assert "queued naive on synthetic, seed 0 [smoke] (ray; log: /logs/run0.log)" in out
    running = "running naive on synthetic, seed 1 [smoke] (ray; log: /logs/run1.log): no epoch finished yet"
    assert running in out
    assert "failed naive on synthetic, seed 2 [smoke]: RuntimeError: boom; log: /logs/run2.log" in out
    assert not is_held(root / "locks" / "run1.lock")  # released, and the probe took nothing


def test_status_each_lists_every_finished_run(capsys):
    published = Path(__file__).resolve().parents[1] / "published"
    assert cli("status", "--results-dir", str(published), "--each") == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("finished ")]
    each = [line for line in lines if ", seed " in line and ": test acc " in line]
    assert len(each) == len(list((published / "runs").glob("*.json")))


def test_a_damaged_run_record_is_one_warning_line(tmp_path, capsys):
    root = tmp_path / "r"
    (root / "failed").mkdir(parents=True)
    (root / "failed" / "x.json").write_text("{not json")
    assert cli("status", "--results-dir", str(root)) == 0
    err = capsys.readouterr().err.strip().splitlines()
    damaged = root / "failed" / "x.json"
    assert err == [f"amst-bench: warning: {damaged}: skipped: not a run record (JSONDecodeError)"]


# ----------------------------------------------------------------------------- integration: engines

GRID = ["--methods", "ogm-ge", "--datasets", "synthetic", "--profile", "smoke", "--set", "epochs=6",
        "--set", "synthetic_samples=240", "--no-leaderboard"]


def command(results: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", "from amst_bench.cli import main; main()", "run", *GRID,
            "--results-dir", str(results), *args]


def measured(results: Path) -> dict[str, str]:
    """Every measured number of each result (all but timings and dates), as JSON text."""
    out = {}
    for path in sorted((results / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        curves = {k: v for k, v in r["curves"].items() if "seconds" not in k}
        keep = [r["test"], r["validation"], r["best_epoch"], r["best_val_acc"], curves, r["method_resolved"]]
        out[path.name] = json.dumps(keep, sort_keys=True)
    return out


@pytest.fixture(scope="module")
def local_results(tmp_path_factory) -> dict[str, str]:
    results = tmp_path_factory.mktemp("local") / "r"
    done = subprocess.run(command(results, "--seeds", "0,1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return measured(results)


def kill_when_checkpointed(results: Path, sig: int, seconds: float = 120) -> str:
    """Wait until a run has written an epoch checkpoint, then send `sig` to the process holding
    its lock (the worker training it); the run id."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for checkpoint in (results / "checkpoints").glob("*.pt"):
            run_id = checkpoint.stem
            pid = (results / "locks" / f"{run_id}.lock").read_text().strip()
            if pid:
                os.kill(int(pid), sig)
                return run_id
        time.sleep(0.02)
    raise AssertionError("no run checkpointed in time")


def starts(results: Path, run_id: str) -> list[str]:
    """The 'epochs FIRST..LAST' lines of a run's log: one per start (a resume starts after 0)."""
    log = (results / "logs" / "runs" / f"{run_id}.log").read_text()
    return [line.split(": epochs ")[1] for line in log.splitlines() if ": epochs " in line]


@pytest.mark.integration
def test_local_workers_give_the_local_results_and_a_killed_worker_resumes(tmp_path, local_results):
    results = tmp_path / "r"
    proc = subprocess.Popen(command(results, "--seeds", "0,1", "--executor", "local:2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = kill_when_checkpointed(results, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert measured(results) == local_results
    first, again = starts(results, killed)
    assert first == "0..5" and again != "0..5"  # retried by a new worker, from its checkpoint
    assert "resumed from its checkpoint" in err
    assert not list((results / "queue").glob("*.json")) and not (results / "failed").exists()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find the workers")
def test_workers_end_when_their_coordinator_is_killed(tmp_path):
    results = tmp_path / "r"
    proc = subprocess.Popen(command(results, "--seeds", "0,1", "--executor", "local:2"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = int(kill_when_checkpointed(results, 0) and _lock_holder(results))  # signal 0: just find it
    assert worker != proc.pid
    proc.kill()  # SIGKILL: the coordinator cannot tell its workers
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker), "a worker outlived its killed coordinator"


def _lock_holder(results: Path) -> str:
    for lock in (results / "locks").glob("*.lock"):
        if pid := lock.read_text().strip():
            return pid
    raise AssertionError("no run holds a lock")


@pytest.mark.integration
def test_a_failed_run_is_named_with_its_log_recorded_and_the_exit_is_1(tmp_path):
    results = tmp_path / "r"
    probe = subprocess.run(command(results, "--seeds", "0"), capture_output=True, text=True, timeout=300)
    [done] = (results / "runs").glob("*.json")
    done.unlink()
    done.mkdir()  # the result cannot be written: the run fails after training
    run = subprocess.run(command(results, "--seeds", "0", "--executor", "local:2"), capture_output=True,
                         text=True, timeout=300)
    assert probe.returncode == 0 and run.returncode == 1
    log = results / "logs" / "runs" / f"{done.stem}.log"
    assert "failed: ogm-ge on synthetic, seed 0: IsADirectoryError: " in run.stderr
    assert f"; log: {log}" in run.stderr and "Traceback" not in run.stderr
    assert "Traceback" in log.read_text()  # the whole story is in the log
    status = subprocess.run([sys.executable, "-c", "from amst_bench.cli import main; main()", "status",
                             "--results-dir", str(results)], capture_output=True, text=True)
    assert "failed ogm-ge on synthetic, seed 0 [" in status.stdout and f"log: {log}" in status.stdout


@pytest.mark.integration
def test_slurm_job_array_on_submitit_local_a_preempted_task_is_requeued_and_resumes(tmp_path, local_results):
    results = tmp_path / "r"
    slurm = ["--executor", "slurm", "--slurm-cluster", "local"]
    proc = subprocess.Popen(command(results, "--seeds", "0,1", *slurm), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    preempted = kill_when_checkpointed(results, signal.SIGUSR2)  # what Slurm sends before preempting
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert measured(results) == local_results
    first, again = starts(results, preempted)
    assert first == "0..5" and again != "0..5"
    submitit_logs = "".join(p.read_text() for p in (results / "logs" / "slurm").rglob("*_log.out"))
    assert submitit_logs.count("Starting with JobEnvironment") == 3  # two tasks, one of them twice
    run_log = (results / "logs" / "runs" / f"{preempted}.log").read_text()  # submitit's lines too
    assert "this job is preempted" in run_log and "Requeued job" in run_log


@pytest.mark.integration
def test_ray_tasks_a_killed_worker_is_retried_and_resumes(tmp_path, local_results):
    ray = pytest.importorskip("ray")
    results = tmp_path / "r"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        codes = []
        runner = threading.Thread(target=lambda: codes.append(cli(*command(results, "--seeds", "0,1",
                                                                           "--executor", "ray")[3:])))
        runner.start()
        killed = kill_when_checkpointed(results, signal.SIGKILL)
        runner.join(timeout=300)
    finally:
        ray.shutdown()
    assert codes == [0]
    assert measured(results) == local_results
    first, again = starts(results, killed)
    assert first == "0..5" and again != "0..5"


@pytest.mark.integration
def test_ray_address_without_a_cluster_is_one_line(tmp_path):
    pytest.importorskip("ray")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray_auto = ["--executor", "ray", "--ray-address", "auto"]
    done = subprocess.run(command(tmp_path / "r", "--seeds", "0", *ray_auto), capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "amst-bench: error: --ray-address auto: no Ray there (" in done.stderr
    assert not list((tmp_path / "r").glob("queue/*.json"))
