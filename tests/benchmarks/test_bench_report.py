"""Reporting hot spots: the Shapley subset evaluation of every evaluation pass, and rendering the
leaderboards over 1,000 stored results."""

from __future__ import annotations

import itertools

import pytest
import torch

from amst_bench.report.balance import balance, majority_rate, subset_values
from amst_bench.report.leaderboard import build_leaderboards
from tests.result_factory import make_result

pytestmark = pytest.mark.bench

METHODS = ["audio", "visual", "naive", "ogm-ge", "pmr", "mslr", "mla", "miles", "amst-alt",
           "amst-joint", "amst-full", "amst-auto", "shapley-alt", "amst-alt[skip_enabled=False]"]
DATASETS = ["synthetic", "cremad", "ave", "mvsa", "iemocap", "urfunny"]
LABELS = ["smoke", "paper", "bench", "paper (epochs=50)"]


@pytest.mark.parametrize("count", [2, 3])
def test_shapley_subset_evaluation(benchmark, count):
    """v(S) over every subset from per-modality logits (CREMA-D's 742 validation clips, 6 classes),
    then the Shapley values, imbalance and utilisation."""
    modalities = {2: ["audio", "visual"], 3: ["audio", "text", "visual"]}[count]
    gen = torch.Generator().manual_seed(0)
    parts = {m: torch.randn(742, 6, generator=gen) for m in modalities}
    labels = torch.randint(0, 6, (742,), generator=gen)

    def evaluate():
        values = subset_values(parts, labels, "sum", majority_rate(labels, 6))
        return balance(values, modalities)

    result = benchmark(evaluate)
    assert abs(sum(result.shapley.values()) - (result.subset_accuracy["+".join(modalities)]
                                                - result.majority_rate)) < 1e-9


@pytest.fixture(scope="module")
def thousand_results():
    grid = itertools.islice(itertools.product(LABELS, DATASETS, METHODS, range(3)), 1000)
    return [
        make_result(variant, dataset, seed, acc=0.3 + 0.01 * ((i * 7) % 50), label=label,
                    profile=label.split()[0], epoch_s=1.0 + (i % 13) / 10)
        for i, (label, dataset, variant, seed) in enumerate(grid)
    ]


def test_leaderboard_rendering_over_1000_results(benchmark, thousand_results):
    assert len(thousand_results) == 1000
    tables = benchmark(build_leaderboards, thousand_results, False)
    assert set(tables) == {"README.md", "accuracy.md", "timing.md", "ablation.md"}
    assert "cremad" in tables["accuracy.md"]
