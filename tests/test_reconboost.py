"""ReconBoost: the stage / phase schedule, the boosting loss with its reconcilement term on hand-built
logits, what each phase trains, the ensemble's membership, three modalities, preset, resume."""

from __future__ import annotations

import math

import pytest
import torch

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.reconboost import boosting_loss, stage_and_phase
from tests.helpers import (
    changed,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    snapshot,
    whole_and_resumed,
)


def test_stages_are_boosting_then_rectification_passes():
    phases = [stage_and_phase(e, 4, 4) for e in range(17)]
    assert phases[:4] == [(0, "boost", i) for i in range(4)]
    assert phases[4:8] == [(0, "rectify", i) for i in range(4)]
    assert phases[8] == (1, "boost", 0) and phases[16] == (2, "boost", 0)
    assert [stage_and_phase(e, 2, 0) for e in range(3)] == [(0, "boost", 0), (0, "boost", 1), (1, "boost", 0)]


def test_boosting_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    others = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    logp = logits.log_softmax(1)
    q = others.softmax(1)
    by_hand = sum(-5 * logp[i, y] / 3 + 1 * q[i, y] * logp[i, y] / 3 for i, y in enumerate([0, 2])) / 2
    assert float(boosting_loss(logits, labels, others, 5.0, 1.0)) == pytest.approx(float(by_hand))
    # no other learner: q = 1 (the code's softmax over its one constant column)
    first = boosting_loss(logits, labels, None, 5.0, 1.0)
    assert float(first) == pytest.approx(float(-(5 - 1) * (logp[0, 0] + logp[1, 2]) / 3 / 2))


def test_reconcilement_term_pushes_less_where_the_ensemble_is_already_right():
    logits = torch.zeros(2, 3, requires_grad=True)
    labels = torch.tensor([0, 0])
    others = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]])  # right on sample 0, wrong on sample 1
    boosting_loss(logits, labels, others, 5.0, 1.0).backward()
    push = -logits.grad[:, 0]  # how hard each sample's true-class logit is raised
    assert push[0] < push[1]
    q = others.softmax(1)[:, 0]
    assert float(push[1] / push[0]) == pytest.approx(float((5 - q[1]) / (5 - q[0])))
    logits.grad = None
    boosting_loss(logits, labels, others, 5.0, 0.0).backward()  # without the term: the same push
    assert logits.grad[0, 0] == logits.grad[1, 0]


def _params(method, part, modality=None):
    module = method.model[part] if modality is None else method.model[part][modality]
    return snapshot(module)


def test_boost_phase_trains_one_learner_and_rectification_the_ensemble():
    method, bundle = make_method("reconboost")
    batch = first_batch(bundle)
    method.on_train_epoch_start(0)
    assert method.trained_modalities(0) == ("audio",) and method.members() == ["audio"]
    before = {m: _params(method, "encoders", m) for m in method.modalities}
    head, boost = _params(method, "head"), _params(method, "boost")
    out = method.training_step(batch, 0)
    assert changed(before["audio"], method.model["encoders"]["audio"])
    assert not changed(before["visual"], method.model["encoders"]["visual"])
    assert changed(head, method.model["head"]) and not changed(boost, method.model["boost"])
    assert set(out.embeddings) == {"audio"}
    for epoch in range(4):
        method.on_train_epoch_end(epoch)
    assert method.added == ["audio"]
    method.on_train_epoch_start(4)  # rectification: the ensemble (audio) and ρ
    assert all(not o.state for o in method.optimizers.values())  # a fresh SGD per phase
    assert method.trained_modalities(4) == ("audio",)
    before = {m: _params(method, "encoders", m) for m in method.modalities}
    method.training_step(batch, 4)
    assert changed(before["audio"], method.model["encoders"]["audio"])
    assert not changed(before["visual"], method.model["encoders"]["visual"])
    assert changed(boost, method.model["boost"])
    method.on_train_epoch_start(8)  # stage 1 boosts visual against the audio learner
    assert method.trained_modalities(8) == ("visual",) and method.members() == ["audio", "visual"]
    out = method.training_step(batch, 8)
    assert set(out.embeddings) == {"audio", "visual"}
    method.on_train_epoch_end(11)
    method.add("audio")  # re-adding moves to the end, as DynamicNet.add
    assert method.added == ["visual", "audio"]


def test_prediction_sums_the_members_times_rho():
    method, bundle = make_method("reconboost")
    method.added = ["visual", "audio"]
    with torch.no_grad():
        method.model["boost"].rate.fill_(0.5)
        pred = method.predict(first_batch(bundle).inputs)
    parts = pred.modality_logits
    torch.testing.assert_close(pred.logits, parts["visual"] + parts["audio"])
    emb = pred.embeddings["audio"]
    torch.testing.assert_close(parts["audio"], 0.5 * method.model["head"](emb).detach())
    method.added = []
    assert torch.equal(method.subset_logits(pred, frozenset({"visual"})), torch.zeros_like(pred.logits))


def test_three_modalities_cycle_and_text_weights():
    method, _ = make_method("reconboost", dataset="synthetic-avt")
    assert [method.stage_modality(s) for s in range(4)] == ["audio", "text", "visual", "audio"]
    assert (method.weight1, method.weight2) == (1.0, 0.25)
    with pytest.raises(UnsupportedDataset, match="at least two"):
        registry.methods.get("reconboost").check_supported(None, ("audio",))


def test_original_preset_optimiser_and_stage_decay():
    method, _ = make_method("reconboost", preset="original")
    group = method.optimizers["encoders"].param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 5e-4
    assert method.schedulers["head"].step_size == 30 * 8
    assert (method.weight1, method.weight2) == (5.0, 1.0)
    default, _ = make_method("reconboost")
    assert default.optimizers["encoders"].param_groups[0]["lr"] == 1e-3
    assert math.isclose(default.schedulers["head"].step_size, 70)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = run_spec("reconboost", {"epochs_per_stage": "1", "correct_epoch": "1"}, epochs=3)
    bundle = load_bundle()
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path)
    assert whole["curves"]["trained_modalities"] == [["audio"], ["audio"], ["visual"]]
    assert whole["method_resolved"]["ensemble"] == ["audio", "visual"]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
