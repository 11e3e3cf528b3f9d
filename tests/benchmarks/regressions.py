"""List the benchmarks whose time grew against the previous saved run (what `nox -s bench` prints
after pytest-benchmark's tables): `python -m tests.benchmarks.regressions [--storage DIR]
[--field min] [--threshold 25]`. Exit 1 when any grew by more than the threshold (percent), 0
otherwise, also when there is no earlier run to compare with."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def saved_runs(storage: Path) -> list[Path]:
    """Saved runs of the machine folder holding the newest one, oldest first (pytest-benchmark
    numbers them 0001_…, 0002_… per machine folder)."""
    runs = list(storage.glob("*/[0-9][0-9][0-9][0-9]_*.json"))
    if not runs:
        return []
    newest = max(runs, key=lambda p: p.stat().st_mtime)
    return sorted(newest.parent.glob("[0-9][0-9][0-9][0-9]_*.json"))


def stats(path: Path, field: str) -> dict[str, float]:
    data = json.loads(path.read_text())
    return {b["fullname"]: float(b["stats"][field]) for b in data["benchmarks"]}


def regressions(before: dict[str, float], after: dict[str, float], threshold: float) -> list[str]:
    lines = []
    for name in sorted(set(before) & set(after)):
        grew = 100.0 * (after[name] / before[name] - 1.0) if before[name] > 0 else 0.0
        if grew > threshold:
            lines.append(f"{name}: {before[name]:.6g} s -> {after[name]:.6g} s (+{grew:.0f}%)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", type=Path, default=Path(".benchmarks"))
    parser.add_argument("--field", default="min", choices=("min", "median", "mean"))
    parser.add_argument("--threshold", type=float, default=25.0, help="percent")
    args = parser.parse_args(argv)
    runs = saved_runs(args.storage)
    if len(runs) < 2:
        print(f"bench: no earlier run in {args.storage} to compare with; this one is the baseline")
        return 0
    before, after = (stats(p, args.field) for p in runs[-2:])
    found = regressions(before, after, args.threshold)
    print(f"bench: {runs[-1].name} against {runs[-2].name}, {args.field} time, threshold {args.threshold:g}%")
    for line in found:
        print(f"  regressed: {line}")
    if not found:
        print(f"  no benchmark regressed (of {len(set(before) & set(after))} compared)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
