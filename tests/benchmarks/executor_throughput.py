"""Grid throughput (runs per hour) of `--executor local` against `--executor local:N`: the same grid
run as a user runs it (a fresh `amst-bench run` process, a fresh results folder, start-up included),
the settings alternated round by round so that a machine whose load drifts slows each alike; the
ratio to `local` is the figure to read. Not a test: the measurement behind README's "Scale out".

    python -m tests.benchmarks.executor_throughput --workers 2 --rounds 2 [--epochs 48]

Prints one line per command, then runs/hour per setting (median over rounds) and the ratio, with
the machine (cores, load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_grid(executor: str, grid: list[str]) -> tuple[float, int]:
    """Wall seconds of one whole `amst-bench run` and the number of results it wrote."""
    with tempfile.TemporaryDirectory(prefix="amst-throughput-") as scratch:
        results = Path(scratch) / "r"
        command = [sys.executable, "-c", "from amst_bench.cli import main; main()", "run", *grid,
                   "--executor", executor, "--results-dir", str(results), "--no-leaderboard"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{executor}: exit {done.returncode}\n{done.stderr[-2000:]}")
        return seconds, len(list((results / "runs").glob("*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--methods", default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="longer runs than smoke's 12 epochs")
    args = parser.parse_args()
    grid = ["--methods", args.methods, "--datasets", "synthetic", "--profile", "smoke", "--seeds", args.seeds]
    grid += ["--set", f"epochs={args.epochs}"] if args.epochs else []
    settings = ["local", f"local:{args.workers}"]
    load_before = os.getloadavg()
    timings: dict[str, list[float]] = {s: [] for s in settings}
    runs = 0
    for round_ in range(args.rounds):
        for executor in settings if round_ % 2 == 0 else reversed(settings):
            seconds, runs = run_grid(executor, grid)
            timings[executor].append(seconds)
            print(f"round {round_}: --executor {executor}: {runs} runs in {seconds:.1f} s", flush=True)
    load_after = os.getloadavg()
    per_hour = {s: runs * 3600 / statistics.median(t) for s, t in timings.items()}
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_1min_before_after": [round(load_before[0], 1), round(load_after[0], 1)],
        "grid": " ".join(grid), "runs": runs,
        "seconds": {s: [round(x, 1) for x in t] for s, t in timings.items()},
        "runs_per_hour_median": {s: round(v) for s, v in per_hour.items()},
        "ratio_to_local": round(per_hour[settings[1]] / per_hour["local"], 2),
        # each round runs both back to back: its ratio is the least disturbed by a drifting load
        "ratio_per_round": [round(one / many, 2)
                            for one, many in zip(timings["local"], timings[settings[1]], strict=True)],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
