"""Shapley values and conditional utilisation on hand-built value tables (closed forms)."""

from __future__ import annotations

import pytest
import torch

from amst_bench.report.balance import (
    conditional_utilisation,
    majority_rate,
    shapley_imbalance,
    shapley_values,
    subset_values,
)

F = frozenset


def test_two_modalities_match_the_closed_form():
    v = {F(): 0.2, F({"a"}): 0.6, F({"v"}): 0.4, F({"a", "v"}): 0.9}
    phi = shapley_values(v, ["a", "v"])
    # φ_a = ½[(v(a) − v(∅)) + (v(av) − v(v))] = ½[0.4 + 0.5]
    assert phi["a"] == pytest.approx(0.45)
    assert phi["v"] == pytest.approx(0.5 * ((0.4 - 0.2) + (0.9 - 0.6)))
    assert sum(phi.values()) == pytest.approx(v[F({"a", "v"})] - v[F()])


def test_three_modalities_match_the_closed_form_and_efficiency():
    v = {F(): 0.1, F("a"): 0.5, F("v"): 0.3, F("t"): 0.4, F("av"): 0.7, F("at"): 0.6, F("vt"): 0.5,
         F("avt"): 0.8}
    phi = shapley_values(v, ["a", "v", "t"])
    # φ_a = 1/3(v(a)−v(∅)) + 1/6(v(av)−v(v)) + 1/6(v(at)−v(t)) + 1/3(v(avt)−v(vt))
    expected = (0.4) / 3 + (0.4) / 6 + (0.2) / 6 + (0.3) / 3
    assert phi["a"] == pytest.approx(expected)
    assert sum(phi.values()) == pytest.approx(0.8 - 0.1)
    assert shapley_imbalance(phi) == pytest.approx(
        (max(phi.values()) - min(phi.values())) / sum(abs(x) for x in phi.values())
    )


def test_symmetric_modalities_share_equally_and_have_no_imbalance():
    v = {F(): 0.0, F("a"): 0.5, F("v"): 0.5, F("av"): 1.0}
    phi = shapley_values(v, ["a", "v"])
    assert phi == pytest.approx({"a": 0.5, "v": 0.5})
    assert shapley_imbalance(phi) == 0.0


def test_conditional_utilisation_is_the_accuracy_lost_without_the_modality():
    v = {F(): 0.2, F("a"): 0.6, F("v"): 0.4, F("av"): 0.8}
    u = conditional_utilisation(v, ["a", "v"])
    assert u["a"] == pytest.approx((0.8 - 0.4) / 0.8)
    assert u["v"] == pytest.approx((0.8 - 0.6) / 0.8)


def test_subset_values_sum_or_average_the_parts():
    labels = torch.tensor([0, 1, 1, 0])
    parts = {
        "a": torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]),
        "v": torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 3.0], [0.0, 0.5]]),
    }
    v = subset_values(parts, labels, "sum", majority_rate(labels, 2))
    assert v[F()] == 0.5
    assert v[F("a")] == 0.75 and v[F("v")] == 0.5
    assert v[F("av")] == 1.0  # summed: [2,1] [0,4] [1,3] [1,.5] → 0 1 1 0
    mean = subset_values(parts, labels, "mean", 0.5)
    assert mean[F("av")] == v[F("av")]  # a mean of two parts ranks classes as their sum does
