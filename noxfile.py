"""nox sessions: tests, lint, and a GPU timing grid (skipped where there is no CUDA)."""

from __future__ import annotations

import shutil

import nox

nox.options.sessions = ["tests", "lint"]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-n", "2", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """The tests that start real engines: Ray, submitit's local executor, Chromium, workers."""
    session.install(*TORCH)
    session.install("-e", ".[test]")
    session.run("pytest", "-q", "-m", "integration", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """pytest-benchmark timings of the hot paths (tests/benchmarks), one process: each run is saved
    under .benchmarks/ (git-ignored) and shown beside the last saved one; then every benchmark whose
    min time grew by more than 25% is listed and fails the session (README, "Micro-benchmarks")."""
    session.install(*TORCH)
    session.install("-e", ".[test]")
    session.run(
        "pytest", "tests/benchmarks", "-q", "-m", "bench", "-p", "no:xdist",
        "--benchmark-autosave", "--benchmark-compare",
        "--benchmark-columns=min,median,mean,rounds", "--benchmark-max-time=0.5",
        *session.posargs,
    )
    session.run("python", "-m", "tests.benchmarks.regressions", "--field", "min", "--threshold", "25")


@nox.session
def site(session: nox.Session) -> None:
    """The static leaderboard site of the published results, into site/ (or the folder given after --)."""
    session.install(*TORCH)
    session.install("-e", ".")
    out = session.posargs[0] if session.posargs else "site"
    session.run("amst-bench", "publish", "--site", out)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def gpu_bench(session: nox.Session) -> None:
    """Time every method for a few epochs with the paper's encoders on the synthetic data, under the
    default settings and `speed=fast` side by side in one process, each with its compute floor:
    `nox -s gpu_bench` writes amst-results/leaderboards/timing.md (posargs go to `amst-bench bench`,
    e.g. `-- --methods naive,amst-alt`). On a machine with no network (nothing to install), run
    `python -m amst_bench.gpu_session` from the checkout instead (README, "On a lent GPU")."""
    if shutil.which("nvidia-smi") is None:
        session.skip("gpu_bench: no NVIDIA driver on this machine (nvidia-smi not found), nothing timed")
    session.install(*TORCH)
    session.install("-e", ".")
    has_cuda = session.run(
        "python", "-c", "import torch; print(torch.cuda.is_available())", silent=True
    ).strip()
    if has_cuda != "True":
        session.skip("gpu_bench: no CUDA device on this machine, nothing timed")
    session.run("amst-bench", "bench", "--speeds", "default,fast", *session.posargs)
