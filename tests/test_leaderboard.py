"""Leaderboard rendering from hand-made results (no training)."""

from __future__ import annotations

import math
import re

from amst_bench.report import reference
from amst_bench.report.leaderboard import build_leaderboards, summary_for_terminal, write_leaderboards
from tests.result_factory import make_result

PAPER_HEADING = "## Paper reference"


def measured(text: str) -> str:
    """The part of a file before the paper's section."""
    return text.split(PAPER_HEADING)[0]


def row(text: str, label: str) -> list[str]:
    """Cells of the first table row whose first cell is exactly `label`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{text}")


def test_se_over_three_seeds_and_single_seed():
    results = [make_result("naive", seed=s, acc=a) for s, a in enumerate([0.70, 0.72, 0.74])]
    results.append(make_result("amst-alt", seed=0, acc=0.81))
    acc = measured(build_leaderboards(results)["accuracy.md"])
    se = 100 * math.sqrt(((0.70 - 0.72) ** 2 + (0.74 - 0.72) ** 2) / 2) / math.sqrt(3)
    assert f"{se:.2f}" == "1.15"
    assert row(acc, "naive")[1] == "<u>72.0</u> ± 1.15 (n=3)"
    assert row(acc, "amst-alt")[1] == "**81.0** (n=1)"


def test_bold_best_underline_second_and_row_order():
    results = [
        make_result("naive", acc=0.60),
        make_result("amst-alt", acc=0.80),
        make_result("amst-alt[skip_enabled=False]", acc=0.70),
        make_result("my-method", acc=0.65),
        make_result("audio", acc=0.55),
    ]
    acc = measured(build_leaderboards(results)["accuracy.md"])
    assert row(acc, "amst-alt")[1] == "**80.0** (n=1)"
    assert row(acc, "amst-alt[skip_enabled=False]")[1] == "<u>70.0</u> (n=1)"
    assert row(acc, "naive")[1] == "60.0 (n=1)"
    assert row(acc, "audio")[1] == "55.0 (n=1)"
    order = [line.split("|")[1].strip() for line in acc.split("### Test macro-F1")[0].splitlines()
             if line.startswith("| ") and "variant" not in line]
    assert order == ["audio", "naive", "amst-alt", "amst-alt[skip_enabled=False]", "my-method"]


def test_ties_share_the_mark():
    results = [
        make_result("naive", acc=0.70),
        make_result("amst-alt", acc=0.80),
        make_result("amst-joint", acc=0.80),
        make_result("mla", acc=0.75),
        make_result("audio", acc=0.75),
    ]
    acc = measured(build_leaderboards(results)["accuracy.md"])
    assert row(acc, "amst-alt")[1] == row(acc, "amst-joint")[1] == "**80.0** (n=1)"
    assert row(acc, "mla")[1] == row(acc, "audio")[1] == "<u>75.0</u> (n=1)"
    assert row(acc, "naive")[1] == "70.0 (n=1)"


def test_paper_reference_only_in_its_labelled_section():
    files = build_leaderboards([make_result("amst-full", dataset="cremad", acc=0.7)])
    for name, table in (("accuracy.md", "Table 1"), ("timing.md", "Table 3"), ("ablation.md", "Table 2")):
        text = files[name]
        assert text.count(PAPER_HEADING) == 1
        assert f"(AMST paper, {table}" in text and "reported numbers, not measured here" in text
        paper = text.split(PAPER_HEADING)[1]
        assert "80.5" in paper or "63.6" in paper
        assert "80.5" not in measured(text) and "63.6" not in measured(text)
        assert "(n=" not in paper
    paper = files["accuracy.md"].split(PAPER_HEADING)[1]
    assert row(paper, "amst-full")[1:] == ["**80.5** ± 0.77", "**65.8** ± 0.38", "72.6 ± 0.43",
                                           "**68.4** ± 0.54", "<u>71.6</u> ± 0.13"]
    assert row(paper, "pmr")[4] == "–"
    assert row(paper, "ogm-ge")[3] == "<u>72.7</u> ± 0.55"


def test_reference_tables_cover_the_paper():
    methods = "audio visual text naive ogm-ge pmr mslr mla amst-alt amst-joint amst-full".split()
    assert list(reference.TABLE1_ACCURACY) == methods
    assert reference.TABLE1_ACCURACY["amst-alt"]["cremad"] == (79.0, 0.55)
    assert "mvsa" not in reference.TABLE1_ACCURACY["audio"]
    assert reference.TABLE2_ABLATION[5]["mvsa"] == (72.6, 0.07)
    assert reference.TABLE3_SECONDS_A100["pmr"].keys() == {"cremad", "ave", "mvsa"}


GPU = {"type": "cuda", "name": "GPU X"}


def test_timing_percent_against_naive():
    results = [
        make_result("naive", epoch_s=2.0, train_s=1.0, device=GPU, epochs=5),
        make_result("amst-alt", epoch_s=1.5, train_s=0.5, device=GPU, epochs=5),
        make_result("amst-full", epoch_s=2.5, train_s=1.2, device=GPU, epochs=5),
        make_result("mla", dataset="other", epoch_s=3.0, device=GPU, epochs=5),
    ]
    timing = build_leaderboards(results)["timing.md"]
    whole, train = measured(timing).split("### Training only")
    assert "CPU: not comparable\n" not in measured(timing)
    assert row(whole, "variant") == ["variant", "other", "synthetic"]
    assert row(whole, "naive")[2] == "2.00 (n=1, 5 epochs)"
    assert row(whole, "amst-alt")[2] == "1.50 (+25%) (n=1, 5 epochs)"
    assert row(whole, "amst-full")[2] == "2.50 (-25%) (n=1, 5 epochs)"
    assert row(whole, "mla")[1] == "3.00 (n=1, 5 epochs)"  # no naive on that dataset: no percent
    assert row(train, "amst-alt")[2] == "0.50 (+50%) (n=1, 5 epochs)"
    assert "Devices: GPU X (4 runs)" in train
    paper = timing.split(PAPER_HEADING)[1]  # the paper's printed percentages come out of the same rule
    assert paper.startswith(" (AMST paper, Table 3, one A100; reported numbers, not measured here)")
    assert "averaged over 100 epochs" in paper
    assert row(paper, "amst-alt")[1:] == ["15.4 (+24%)", "12.4 (+13%)", "16.9 (+38%)", "26.1 (+29%)",
                                          "34.1 (+36%)"]
    assert row(paper, "amst-full")[1] == "25.1 (-24%)"
    assert row(paper, "naive")[1] == "20.3" and row(paper, "mla")[1] == "20.8"  # no percent the paper lacks


def test_cpu_timings_are_marked_and_not_compared():
    results = [make_result("naive", seed=s, epoch_s=2.0 + s, label="smoke") for s in range(3)]
    results += [make_result("amst-alt", seed=s, epoch_s=1.0, label="smoke") for s in range(3)]
    results += [make_result("naive", epoch_s=2.0, label="bench", device=GPU, epochs=5),
                make_result("amst-alt", epoch_s=1.0, label="bench", device=GPU, epochs=5)]
    timing = measured(build_leaderboards(results)["timing.md"])
    bench, smoke = re.split(r"^## Protocol: ", timing, flags=re.M)[1:]
    assert smoke.startswith("smoke — CPU: not comparable\n")
    assert "CPU: not comparable. These runs ran on the CPU" in smoke
    assert row(smoke, "naive")[1] == "3.00 ± 0.58 (n=3, 12 epochs)"
    assert row(smoke, "amst-alt")[1] == "1.00 ± 0.00 (n=3, 12 epochs)"  # no (+67%)
    assert "%)" not in smoke
    assert bench.startswith("bench\n") and "CPU" not in bench
    assert row(bench, "amst-alt")[1] == "1.00 (+50%) (n=1, 5 epochs)"


def test_mixed_devices_and_epoch_counts_are_said():
    results = [make_result("naive", seed=0, epoch_s=2.0, device=GPU, epochs=5),
               make_result("naive", seed=1, epoch_s=2.0, device={"type": "cuda", "name": "GPU Y"}, epochs=1),
               make_result("amst-alt", seed=0, epoch_s=1.0, device=GPU, epochs=1)]
    timing = measured(build_leaderboards(results)["timing.md"])
    assert row(timing, "naive")[1] == "2.00 ± 0.00 (n=2, 1–5 epochs)"
    assert row(timing, "amst-alt")[1] == "1.00 (n=1, 1 epoch)"  # mixed devices: no percent
    assert "GPU X (2 runs), GPU Y (1 run) (mixed devices: timings are not comparable" in timing


def test_ablation_grid():
    results = [make_result("amst-alt[skip_enabled=False]", acc=0.7),
               make_result("amst-full", acc=0.8), make_result("naive", acc=0.9)]
    abl = measured(build_leaderboards(results)["ablation.md"])
    assert row(abl, "3") == ["3", "✓", "–", "–", "<u>70.0</u> (n=1)"]
    assert row(abl, "6") == ["6", "✓", "✓", "✓", "**80.0** (n=1)"]
    assert row(abl, "1") == ["1", "–", "✓", "–", "–"]
    assert "90.0" not in abl  # naive is not an ablation row

    none = build_leaderboards([make_result("naive")])["ablation.md"]
    assert "## Protocol" not in none and "`amst-bench ablation --datasets ...`" in none


def test_protocol_labels_make_separate_sections():
    results = [make_result("naive", acc=0.61, label="smoke"), make_result("naive", acc=0.93, label="paper"),
               make_result("amst-alt", acc=0.44, label="smoke (epochs=5)"),
               make_result("naive", acc=0.22, label="abc")]
    acc = build_leaderboards(results)["accuracy.md"]
    headings = re.findall(r"^## Protocol: (.*)$", acc, flags=re.M)
    assert headings == ["paper", "abc", "smoke", "smoke (epochs=5)"]  # paper first, then alphabetical
    sections = dict(zip(headings, re.split(r"^## Protocol: .*$", measured(acc), flags=re.M)[1:], strict=True))
    assert "93.0" in sections["paper"] and "61.0" not in sections["paper"]
    assert "61.0" in sections["smoke"] and "93.0" not in sections["smoke"]
    assert "amst-alt" not in sections["smoke"]
    assert "44.0" in sections["smoke (epochs=5)"] and "22.0" in sections["abc"]


def test_duplicate_seed_counts_once_latest_wins():
    results = [make_result("naive", seed=0, acc=0.9, finished="2025-02-01T00:00:00+00:00"),
               make_result("naive", seed=0, acc=0.5, finished="2025-01-01T00:00:00+00:00"),
               make_result("naive", seed=1, acc=0.8)]
    acc = measured(build_leaderboards(results)["accuracy.md"])
    assert row(acc, "naive")[1] == "85.0 ± 5.00 (n=2)"  # one row: nothing to mark


def test_two_splits_of_one_dataset_do_not_mix():
    results = [make_result("naive", dataset="cremad", acc=0.7, split="random-80/10/10"),
               make_result("naive", dataset="cremad", acc=0.5, split="speaker")]
    acc = measured(build_leaderboards(results)["accuracy.md"])
    assert row(acc, "naive")[1:3] == ["70.0 (n=1)", "50.0 (n=1)"]
    assert "cremad (speaker): speaker" in acc


def test_per_modality_and_f1_tables():
    results = [make_result("naive", acc=0.7, f1=0.66, modality={"audio": 0.601, "visual": 0.502})]
    acc = build_leaderboards(results)["accuracy.md"]
    f1_part, modality_part = acc.split("### Test macro-F1 (%)")[1].split("### Per-modality")
    assert row(f1_part, "naive")[1] == "66.0 (n=1)"
    assert "synthetic · audio" in modality_part
    assert row(modality_part, "naive")[1:3] == ["60.1 (n=1)", "50.2 (n=1)"]


def test_empty_results_still_render():
    files = build_leaderboards([])
    assert set(files) == {"README.md", "accuracy.md", "timing.md", "ablation.md"}
    for name in ("accuracy.md", "timing.md", "ablation.md"):
        assert "No results yet: run `amst-bench run ...`" in files[name]
        assert PAPER_HEADING in files[name]
    assert "No results yet" in summary_for_terminal([])


def test_summary_is_accuracy_only():
    text = summary_for_terminal([make_result("naive", acc=0.7)])
    assert "### Test accuracy (%)" in text and row(text, "naive")[1] == "70.0 (n=1)"
    assert "macro-F1" not in text and PAPER_HEADING not in text


def test_write_is_idempotent(tmp_path):
    results = [make_result("naive", seed=s, acc=0.6 + s / 100, device={"type": "cuda", "name": "GPU X"})
               for s in range(3)]
    out = tmp_path / "boards" / "nested"
    paths = write_leaderboards(results, out)
    assert sorted(p.name for p in paths) == ["README.md", "ablation.md", "accuracy.md", "timing.md"]
    first = {p.name: p.read_bytes() for p in paths}
    write_leaderboards(list(reversed(results)), out)
    assert {p.name: p.read_bytes() for p in paths} == first
    readme = first["README.md"].decode()
    assert "amst-bench leaderboard" in readme and "do not edit" in readme
    assert all(f"({name})" in readme for name in ("accuracy.md", "timing.md", "ablation.md"))
    assert "GPU X (3 runs)" in first["timing.md"].decode()
    assert not list(out.glob(".*.tmp"))


def test_timing_profile_results_stay_out_of_the_accuracy_tables():
    timed = [make_result("naive", "synthetic", 0, 0.42, profile="bench", label="bench"),
             make_result("amst-alt", "synthetic", 0, 0.37, profile="bench", label="bench")]
    files = build_leaderboards(timed)
    assert "42.0" not in files["accuracy.md"] and "accuracies are not reported" in files["accuracy.md"]
    assert "## Protocol: bench" in files["timing.md"]
    assert "## Protocol: bench" not in files["ablation.md"]
