"""Diagnosing & Re-learning: purity, the weight, the soft re-initialisation, its schedule, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from amst_bench.methods.relearning import feature_purity, purity_score, reinit_weight
from tests.helpers import (
    comparable,
    load_bundle,
    make_method,
    run_spec,
    whole_and_resumed,
)


def test_purity_is_the_majority_label_share_per_cluster():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert purity_score(labels, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(4 / 6)
    assert purity_score(labels, np.array([5, 5, 3, 3, 1, 1])) == 1.0
    assert purity_score(labels, np.zeros(6, dtype=int)) == pytest.approx(2 / 6)


def test_separable_features_have_purity_one_and_noise_less():
    labels = torch.arange(60) % 3
    separable = torch.nn.functional.one_hot(labels, 3).float() * 10 + 0.01 * torch.randn(60, 3)
    assert feature_purity(separable, labels, 3) == 1.0
    torch.manual_seed(0)
    assert feature_purity(torch.randn(60, 8), labels, 3) < 1.0


def test_weight_is_tanh_of_lambda_times_the_gap():
    assert reinit_weight(0.9, 0.6, 3.0) == pytest.approx(math.tanh(0.9))
    assert reinit_weight(0.6, 0.9, 3.0) == pytest.approx(math.tanh(0.9))
    assert reinit_weight(0.7, 0.7, 3.0) == 0.0


def test_reinit_blends_each_encoder_with_its_initial_parameters_and_leaves_the_head():
    method, _ = make_method("relearning")
    initial = {m: [p.clone() for p in method.model["encoders"][m].parameters()] for m in method.modalities}
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)
    current = {m: [p.clone() for p in method.model["encoders"][m].parameters()] for m in method.modalities}
    head = [p.clone() for p in method.model["head"].parameters()]
    method.reinit({"audio": 0.25, "visual": 0.0})
    for p, p0, p1 in zip(method.model["encoders"]["audio"].parameters(), initial["audio"], current["audio"],
                         strict=True):
        torch.testing.assert_close(p.detach(), 0.25 * p0 + 0.75 * p1)
    assert all(torch.equal(p.detach(), p1) for p, p1 in
               zip(method.model["encoders"]["visual"].parameters(), current["visual"], strict=True))
    after = method.model["head"].parameters()
    assert all(torch.equal(p.detach(), h) for p, h in zip(after, head, strict=True))


def test_diagnosis_after_positive_multiples_at_most_reinit_num_times():
    method, bundle = make_method("relearning", reinit_epoch=2, reinit_num=2)
    method.ctx.train = bundle.train
    assert [e for e in range(9) if method.diagnoses_after(e)] == [2, 4, 6, 8]
    for epoch in range(9):
        method.on_train_epoch_start(epoch)
    assert [h["epoch"] for h in method.history] == [2, 4]  # at the start of epochs 3 and 5
    entry = method.history[0]
    for m in method.modalities:
        w = reinit_weight(entry["purity_train"][m], entry["purity_val"][m], 3.0)
        assert entry["weight"][m] == pytest.approx(w)
    assert method.model.training


def test_original_preset_is_lr_0002_without_decay():
    method, _ = make_method("relearning", preset="original")
    resolved = method.resolved_options()
    assert (resolved["lr"], resolved["lr_decay"]) == (0.002, 1.0)
    for _ in range(80):
        for o in method.optimizers.values():
            o.step()  # no gradients: nothing moves
        for s in method.schedulers.values():
            s.step()
    assert all(g["lr"] == 0.002 for o in method.optimizers.values() for g in o.param_groups)


def test_three_modalities_have_one_weight_each():
    method, bundle = make_method("relearning", dataset="synthetic-avt")
    method.ctx.train = bundle.train
    method.relearn(1)
    assert set(method.history[0]["weight"]) == {"audio", "text", "visual"}


def _spec():
    return run_spec("relearning", {"reinit_epoch": "1"}, epochs=3, synthetic_samples=120)


def test_resumed_run_reinitialises_to_the_same_initial_parameters(tmp_path):
    bundle = load_bundle(protocol=_spec().protocol)
    whole, resumed = whole_and_resumed(_spec(), bundle, tmp_path)
    assert [h["epoch"] for h in whole["method_resolved"]["history"]] == [1]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
