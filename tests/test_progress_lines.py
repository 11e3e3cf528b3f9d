"""What a grid prints to a log: full variant names, unwrapped lines, a counter of runs that train."""

from __future__ import annotations

from tests.helpers import cli


def run(tmp_path, methods: str, *extra: str) -> int:
    return cli("run", "--methods", methods, "--datasets", "synthetic", "--seeds", "0", "--profile", "smoke",
               "--set", "epochs=1", "--set", "synthetic_samples=240", "--no-leaderboard",
               "--results-dir", str(tmp_path / "r"), *extra)


def test_lines_name_the_full_variant_unwrapped_and_count_only_runs_that_train(tmp_path, capsys):
    assert run(tmp_path, "naive") == 0
    capsys.readouterr()
    extra = ("--set", "amst-alt.skip_enabled=false", "--set", "amst-alt.skipped_forward=none")
    assert run(tmp_path, "naive,amst-alt", *extra) == 0
    lines = capsys.readouterr().err.splitlines()
    assert "done already: naive on synthetic, seed 0 (--force redoes it)" in lines
    [trained] = [line for line in lines if "test acc" in line]
    # One line, longer than 80 columns, with the variant's options in full; counted 1 of 1.
    assert trained.startswith("[1/1] amst-alt[skip_enabled=False;skipped_forward=none] on synthetic, seed 0:")
    assert len(trained) > 80


def test_methods_that_cannot_run_are_not_counted(tmp_path, capsys):
    assert run(tmp_path, "all") == 0
    err = capsys.readouterr().err
    counted = [line for line in err.splitlines() if "test acc" in line]
    assert "not run: text on synthetic" in err
    assert counted[-1].startswith(f"[{len(counted)}/{len(counted)}] ")
