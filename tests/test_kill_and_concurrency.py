"""Killed and concurrent runs, with real `amst-bench` processes: SIGKILL at several points, rerun,
and the result equals an uninterrupted run's; two processes on one results folder train each run
once; Ctrl-C says what was kept and the rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Several real processes each (the marker's definition): run by .ci/run after the quick suite,
# and by `pytest -m integration` / `nox -s integration`.
pytestmark = pytest.mark.integration

GRID = ["--methods", "ogm-ge", "--datasets", "synthetic", "--profile", "smoke", "--set", "epochs=4",
        "--set", "synthetic_samples=240"]


def amst_bench(tmp: Path, *args: str, env: dict | None = None, wait: bool = True, seeds: str = "0"):
    command = [sys.executable, "-c", "from amst_bench.cli import main; main()", "run", *GRID,
               "--seeds", seeds, "--results-dir", str(tmp / "r"), "--leaderboard-dir", str(tmp / "b"), *args]
    full_env = {**os.environ, **(env or {})}
    if not wait:
        pipe = subprocess.PIPE
        return subprocess.Popen(command, env=full_env, stdout=pipe, stderr=pipe, text=True)
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=300)


def outcome(results_dir: Path) -> list[dict]:
    """What must not depend on interruptions: everything measured except timings and dates."""
    out = []
    for path in sorted((results_dir / "runs").glob("*.json")):
        r = json.loads(path.read_text())
        curves = {k: v for k, v in r["curves"].items() if "seconds" not in k}
        out.append({"run_id": r["run_id"], "test": r["test"], "best_epoch": r["best_epoch"],
                    "curves": curves})
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("uninterrupted")
    done = amst_bench(tmp)
    assert done.returncode == 0, done.stderr
    return outcome(tmp / "r")


def wait_for(folder: Path, pattern: str, seconds: float = 120) -> None:
    """Until a file matching `pattern` appears in `folder` (a run has written its first checkpoint)."""
    deadline = time.monotonic() + seconds
    while not list(folder.glob(pattern)) and time.monotonic() < deadline:
        time.sleep(0.05)


def no_partial_files(results_dir: Path) -> None:
    for path in (results_dir / "runs").glob("*.json"):
        json.loads(path.read_text())  # every visible result parses


@pytest.mark.parametrize(
    "fault",
    [
        "checkpoints/*.pt@2",  # during the second checkpoint write (after epoch 1)
        "checkpoints/*.json@3",  # during a checkpoint's progress record
        "runs/*.json",  # during the result write
        "b/accuracy.md",  # during the leaderboard write, after the result is stored
    ],
)
def test_sigkill_during_a_write_then_rerun_gives_the_uninterrupted_result(tmp_path, uninterrupted, fault):
    killed = amst_bench(tmp_path, env={"AMST_BENCH_KILL_DURING_WRITE": fault})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    no_partial_files(tmp_path / "r")
    rerun = amst_bench(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert outcome(tmp_path / "r") == uninterrupted
    assert "| ogm-ge" in (tmp_path / "b" / "accuracy.md").read_text()


def test_sigkill_during_an_epoch_then_rerun_resumes_to_the_same_result(tmp_path, uninterrupted):
    proc = amst_bench(tmp_path, wait=False)
    wait_for(tmp_path / "r" / "checkpoints", "*.pt")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rerun = amst_bench(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert outcome(tmp_path / "r") == uninterrupted


def test_ctrl_c_says_what_was_kept_and_the_rerun_resumes(tmp_path, uninterrupted):
    proc = amst_bench(tmp_path, wait=False)
    wait_for(tmp_path / "r" / "checkpoints", "*.json")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130
    assert "interrupted" in stderr and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    rerun = amst_bench(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "resum" in rerun.stdout + rerun.stderr
    assert outcome(tmp_path / "r") == uninterrupted


def test_two_processes_on_one_results_folder_train_each_run_once(tmp_path):
    first = amst_bench(tmp_path, wait=False, seeds="0,1,2")
    second = amst_bench(tmp_path, wait=False, seeds="0,1,2")
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    trained = sum((out + err).count("test acc") for out, err in outputs)
    assert trained == 3, outputs
    assert len(list((tmp_path / "r" / "runs").glob("*.json"))) == 3
    no_partial_files(tmp_path / "r")


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    code = "import os; print(os.getpid())"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    locks = tmp_path / "r" / "locks"
    locks.mkdir(parents=True)
    # A lock file for every run this grid will plan, holding the pid of a process that has exited.
    probe = amst_bench(tmp_path, "--no-leaderboard")
    run_ids = [p.stem for p in (tmp_path / "r" / "runs").glob("*.json")]
    for path in (tmp_path / "r" / "runs").glob("*.json"):
        path.unlink()
    for run_id in run_ids:
        (locks / f"{run_id}.lock").write_text(dead.stdout)
    assert probe.returncode == 0
    again = amst_bench(tmp_path, "--no-leaderboard")
    assert again.returncode == 0, again.stderr
    assert len(list((tmp_path / "r" / "runs").glob("*.json"))) == 1


def test_force_keeps_the_result_resumes_its_own_redo_and_status_says_which(tmp_path, uninterrupted):
    assert amst_bench(tmp_path).returncode == 0
    # A --force redo killed after its second checkpoint: the stored result stands.
    killed = amst_bench(tmp_path, "--force", env={"AMST_BENCH_KILL_DURING_WRITE": "checkpoints/*.pt@3"})
    assert killed.returncode == -signal.SIGKILL
    assert outcome(tmp_path / "r") == uninterrupted
    assert "resumable with --force (a redo; the stored result stands) ogm-ge on synthetic" in status(tmp_path)
    # A plain run keeps the stored result; --force resumes the redo from its checkpoint.
    plain = amst_bench(tmp_path)
    assert "done already" in plain.stderr
    redo = amst_bench(tmp_path, "--force")
    assert redo.returncode == 0 and "resumed from its checkpoint, 2/4 epochs done" in redo.stderr
    assert outcome(tmp_path / "r") == uninterrupted
    assert "resumable" not in status(tmp_path)


def status(tmp: Path) -> str:
    command = [sys.executable, "-c", "from amst_bench.cli import main; main()", "status", "--results-dir",
               str(tmp / "r")]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
