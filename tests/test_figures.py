"""Figures (report/figures.py, `amst-bench plot`, and `leaderboard`): which figures the results
support, index.json's schema, links from accuracy.md, byte-identical regeneration, stale files
removed; drawn from real published runs (the synthetic smoke grid, 3 seeds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from amst_bench.report import figures
from amst_bench.report.leaderboard import build_leaderboards
from amst_bench.report.results import ResultStore
from tests.helpers import cli

PUBLISHED = Path(__file__).resolve().parents[1] / "published" / "runs"
CHOSEN = ("amst-alt", "audio", "naive")


def _published_subset(dest: Path) -> Path:
    """amst-alt, audio, naive on synthetic (smoke, seeds 0-2) and a bench run, copied into dest/runs."""
    (dest / "runs").mkdir(parents=True)
    bench = 0
    for path in sorted(PUBLISHED.glob("*.json")):
        payload = json.loads(path.read_text())
        smoke = (
            payload["profile"] == "smoke"
            and payload["variant"] in CHOSEN
            and payload["dataset"] == "synthetic"
        )
        if smoke or (payload["profile"] == "bench" and not bench):
            bench += payload["profile"] == "bench"
            shutil.copy(path, dest / "runs" / path.name)
    return dest


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return ResultStore(_published_subset(tmp_path_factory.mktemp("figs") / "r")).load_results()


def test_plan_one_figure_per_variant_and_per_dataset_none_for_timing_profiles(results):
    planned = figures.plan(results)
    assert [(f.kind, f.protocol, f.dataset, f.variant) for f in planned] == [
        ("curves", "smoke", "synthetic", "amst-alt"),
        ("curves", "smoke", "synthetic", "audio"),
        ("curves", "smoke", "synthetic", "naive"),
        ("entropy", "smoke", "synthetic", None),
        ("speed", "smoke", "synthetic", None),
    ]
    assert {r.variant for r in planned[3].runs} == {"amst-alt", "naive"}  # one modality: no balance figure
    assert all(len(f.runs) == 3 for f in planned[:3])
    assert len({f.path for f in planned}) == len(planned)
    assert all(not f.path.startswith("/") and ".." not in f.path for f in planned)


def test_skipped_epochs_and_the_seed_band(results):
    alt = next(f for f in figures.plan(results) if f.variant == "amst-alt")
    epochs = len(alt.runs[0].curves["val_acc"])
    audio = figures.skipped_share(alt.runs, "audio", epochs)
    assert audio == [0.0 if e % 3 == 0 else 1.0 for e in range(epochs)]  # synthetic's audio skip: 3
    assert figures.skipped_share(alt.runs, "visual", epochs) == [0.0] * epochs
    mean, se = figures.mean_band([[0.5, 0.2], [0.7, None]])
    assert mean == pytest.approx([60.0, 20.0]) and se == pytest.approx([10.0, 0.0])  # SE: ddof=1 / √n


def _pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_leaderboard_draws_linked_figures_and_plot_redraws_them_byte_identically(tmp_path, capsys):
    root = _published_subset(tmp_path / "r")
    assert cli("leaderboard", "--results-dir", str(root), "--leaderboard-dir", str(tmp_path / "a")) == 0
    drawn = tmp_path / "a" / "figures"
    planned = figures.plan(ResultStore(root).load_results())
    index = json.loads((drawn / "index.json").read_text())
    assert index == [f.index_entry() for f in planned]
    assert all(set(entry) == {"kind", "protocol", "dataset", "variant", "path"} for entry in index)
    accuracy = (tmp_path / "a" / "accuracy.md").read_text()
    links = [line for line in accuracy.split("### Figures")[1].splitlines() if line.startswith("- ")]
    for entry in index:
        assert f"(figures/{entry['path']})" in accuracy
        assert (drawn / entry["path"]).read_bytes().startswith(b"\x89PNG")
    assert len(links) == 3
    first = _pngs(drawn)
    assert b"Software" not in b"".join(first.values()) and b"matplotlib" not in b"".join(first.values())

    assert cli("plot", "--results-dir", str(root), "--leaderboard-dir", str(tmp_path / "b")) == 0
    assert _pngs(tmp_path / "b" / "figures") == first  # drawn afresh: the same bytes
    capsys.readouterr()
    assert cli("plot", "--results-dir", str(root), "--leaderboard-dir", str(tmp_path / "a")) == 0
    assert "(0 redrawn)" in capsys.readouterr().out and _pngs(drawn) == first

    for path in (root / "runs").glob("naive__*"):  # naive's runs gone: its figure goes, the others stay
        path.unlink()
    assert cli("leaderboard", "--results-dir", str(root), "--leaderboard-dir", str(tmp_path / "a")) == 0
    after = _pngs(drawn)
    assert "smoke/synthetic/curves-naive.png" in first and "smoke/synthetic/curves-naive.png" not in after
    assert after["smoke/synthetic/curves-amst-alt.png"] == first["smoke/synthetic/curves-amst-alt.png"]
    assert "curves-naive" not in (tmp_path / "a" / "accuracy.md").read_text()


def test_grid_commands_write_the_same_links_and_leave_the_first_drawing_to_plot(results):
    with_links = build_leaderboards(results)["accuracy.md"]
    assert (
        "### Figures" in with_links
        and "[amst-alt](figures/smoke/synthetic/curves-amst-alt.png)" in with_links
    )
    assert "### Figures" not in build_leaderboards(results, figures=False)["accuracy.md"]


def test_plot_of_a_missing_results_folder_is_one_line(tmp_path, capsys):
    capsys.readouterr()
    assert cli("plot", "--results-dir", str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"amst-bench: error: --results-dir {tmp_path / 'nope'}: no such folder (run `amst-bench run` first)"
    ]
