"""The command line end to end on the synthetic smoke profile, and its handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from amst_bench import registry
from amst_bench.report.metrics import mean_se
from tests.helpers import cli, smoke_run


def unmarked(markdown: str) -> str:
    """Markdown without the best/second-best marks, to find the numbers themselves."""
    return markdown.replace("**", "").replace("<u>", "").replace("</u>", "")


def test_run_writes_results_and_a_leaderboard_built_from_them(tmp_path, capsys):
    results, boards = tmp_path / "results", tmp_path / "boards"
    code = cli(
        "run",
        "--methods",
        "naive,amst-alt",
        "--datasets",
        "synthetic",
        "--seeds",
        "0,1",
        "--profile",
        "smoke",
        "--set",
        "epochs=2",
        "--results-dir",
        str(results),
        "--leaderboard-dir",
        str(boards),
    )
    assert code == 0
    runs = [json.loads(p.read_text()) for p in sorted((results / "runs").glob("*.json"))]
    assert sorted((r["variant"], r["seed"]) for r in runs) == [
        ("amst-alt", 0),
        ("amst-alt", 1),
        ("naive", 0),
        ("naive", 1),
    ]
    assert all(r["overrides"] == {"epochs": "2"} and len(r["curves"]["val_acc"]) == 2 for r in runs)
    accuracy = unmarked((boards / "accuracy.md").read_text())
    for variant in ("naive", "amst-alt"):
        accs = [100 * r["test"]["accuracy"] for r in runs if r["variant"] == variant]
        mean, se = mean_se(accs)
        assert f"{mean:.1f} ± {se:.2f} (n=2)" in accuracy
    assert (boards / "timing.md").is_file() and (boards / "ablation.md").is_file()
    assert "leaderboards written" in capsys.readouterr().out

    # a second run reuses the stored results instead of training again
    before = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    assert (
        cli(
            "run",
            "--methods",
            "naive",
            "--seeds",
            "0",
            "--profile",
            "smoke",
            "--set",
            "epochs=2",
            "--results-dir",
            str(results),
            "--leaderboard-dir",
            str(boards),
        )
        == 0
    )
    assert "done already: " in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    assert before == after

    # the leaderboard command regenerates the same files from the same results
    first = (boards / "accuracy.md").read_text()
    assert cli("leaderboard", "--results-dir", str(results), "--leaderboard-dir", str(boards)) == 0
    assert (boards / "accuracy.md").read_text() == first


def test_all_methods_skip_unsupported_with_a_message(tmp_path, capsys):
    runs = smoke_run(tmp_path, "all", "synthetic", "--set", "synthetic_samples=240")
    err = capsys.readouterr().err
    assert "not run: text on synthetic" in err and "needs the text modality" in err
    expected = set(registry.methods.names()) - {"text"}
    assert sorted(r["method"] for r in runs) == sorted(expected)


def test_ablation_fills_the_grid(tmp_path):
    boards = tmp_path / "b"
    assert (
        cli(
            "ablation",
            "--seeds",
            "0",
            "--profile",
            "smoke",
            "--set",
            "epochs=1",
            "--results-dir",
            str(tmp_path / "r"),
            "--leaderboard-dir",
            str(boards),
        )
        == 0
    )
    runs = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert sorted(r["variant"] for r in runs) == sorted(
        [
            "amst-alt",
            "amst-alt[skip_enabled=False]",
            "amst-joint",
            "amst-joint[skip_enabled=False]",
            "amst-full",
            "amst-full[skip_enabled=False]",
        ]
    )
    table = unmarked((boards / "ablation.md").read_text())
    for r in runs:
        assert f"{100 * r['test']['accuracy']:.1f} (n=1)" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--methods", "nope"], "--methods: unknown method 'nope'"),
        (["run", "--datasets", "nope"], "--datasets: unknown dataset 'nope'"),
        (["run", "--seeds", "0,x"], "--seeds: expected a comma list of non-negative integers"),
        (["run", "--profile", "huge"], "--profile: unknown profile 'huge'"),
        (["run", "--set", "epochs=many"], "--set epochs: expected an integer"),
        (["run", "--set", "amst-alt.nope=1"], "--set amst-alt.nope: amst-alt has no option 'nope'"),
        (["run", "--set", "amst-alt.skipped_forward=maybe"], "expected one of official, none"),
        (["run", "--results-dir", "/proc/forbidden"], "--results-dir /proc/forbidden: not writable"),
        (["run", "--no-such-flag"], "No such option"),
        (["leaderboard", "--results-dir", "/nonexistent/results"], "no such folder"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "amst_bench.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_list_shows_methods_and_datasets(capsys):
    assert cli("list") == 0
    out = capsys.readouterr().out
    assert "amst-full" in out and "synthetic" in out and "unimodal baseline" in out
