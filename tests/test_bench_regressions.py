"""`nox -s bench`'s regression list (tests/benchmarks/regressions.py) reads pytest-benchmark's saved
runs and flags only what grew past the threshold."""

from __future__ import annotations

import json
import os

from tests.benchmarks.regressions import main, regressions


def saved(folder, name, mins, mtime):
    path = folder / name
    benchmarks = [{"fullname": k, "stats": {"min": v}} for k, v in mins.items()]
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    os.utime(path, (mtime, mtime))


def test_only_growth_past_the_threshold_is_a_regression():
    found = regressions({"a": 1.0, "b": 1.0, "c": 2.0}, {"a": 1.3, "b": 1.2, "c": 1.0, "d": 9.0}, 25)
    assert found == ["a: 1 s -> 1.3 s (+30%)"]


def test_the_newest_run_is_compared_with_the_one_before(tmp_path, capsys):
    machine = tmp_path / "Linux-CPython-3.11-64bit"
    machine.mkdir()
    assert main(["--storage", str(tmp_path)]) == 0  # nothing saved yet: this run is the baseline
    saved(machine, "0001_x.json", {"t": 1.0}, 1)
    assert main(["--storage", str(tmp_path)]) == 0
    saved(machine, "0002_x.json", {"t": 2.0}, 2)
    assert main(["--storage", str(tmp_path)]) == 1
    assert "regressed: t: 1 s -> 2 s (+100%)" in capsys.readouterr().out
    saved(machine, "0003_x.json", {"t": 2.1}, 3)
    assert main(["--storage", str(tmp_path)]) == 0
