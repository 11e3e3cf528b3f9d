"""UMT: the feature-distillation term, its window, in-run teachers (frozen, selected, checkpointed)."""

from __future__ import annotations

import re

import pytest
import torch

from amst_bench.errors import UserError
from amst_bench.methods.umt import feature_distillation
from tests.helpers import (
    cli,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    whole_and_resumed,
)


def test_feature_distillation_is_scaling_times_summed_mse_on_hand_built_features():
    student = {"audio": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "visual": torch.tensor([[0.0, 0.0]])}
    teacher = {"audio": torch.tensor([[1.0, 0.0], [3.0, 2.0]]), "visual": torch.tensor([[2.0, 2.0]])}
    # audio: (0 + 4 + 0 + 4) / 4 = 2; visual: (4 + 4) / 2 = 4
    assert float(feature_distillation(student, teacher, 10.0)) == pytest.approx(60.0)


def _teacher_ready(method, bundle):
    method.ctx.train = bundle.train
    method.on_train_epoch_start(0)
    assert method.teachers_trained


def test_extra_loss_pulls_each_student_encoder_to_its_teacher_inside_the_window():
    method, bundle = make_method("umt", teacher_epochs=1, modulation_ends=3)
    _teacher_ready(method, bundle)
    batch = first_batch(bundle, 40)
    emb = method.encode(method.model["encoders"], batch.inputs, method.modalities)
    with torch.no_grad():
        teach = {m: method.model["teachers"][m]["encoder"].eval()(batch.inputs[m]) for m in method.modalities}
    expected = 10.0 * sum(torch.nn.functional.mse_loss(emb[m], teach[m]) for m in method.modalities)
    torch.testing.assert_close(method.extra_loss(batch, 3, emb, None, None), expected)
    assert method.extra_loss(batch, 4, emb, None, None) is None  # after modulation_ends
    # the term reaches the student's encoders, never the teachers
    method.extra_loss(batch, 0, emb, None, None).backward()
    assert all(p.grad is not None for p in method.model["encoders"].parameters())
    assert all(p.grad is None for p in method.model["teachers"].parameters())


def test_teachers_are_trained_selected_and_frozen_and_the_student_step_leaves_them():
    method, bundle = make_method("umt", teacher_epochs=2)
    before = {k: v.clone() for k, v in method.model["teachers"].state_dict().items()}
    _teacher_ready(method, bundle)
    record = method.resolved_options()["teachers"]
    assert set(record) == {"audio", "visual"} and all(r["epoch"] in (0, 1) for r in record.values())
    trained = {k: v.clone() for k, v in method.model["teachers"].state_dict().items()}
    assert any(not torch.equal(before[k], trained[k]) for k in before)
    # the selected epoch's weights give the recorded validation accuracy
    for m in method.modalities:
        assert method.teacher_accuracy(method.model["teachers"][m], m) == record[m]["val_acc"]
    method.model.train()
    method.training_step(first_batch(bundle, 40), 0)
    after = method.model["teachers"].state_dict()
    assert all(torch.equal(trained[k], after[k]) for k in trained)  # BatchNorm statistics included
    assert not any(p.requires_grad for p in method.model["teachers"].parameters())


def test_three_modalities_distil_three_teachers():
    method, bundle = make_method("umt", dataset="synthetic-avt", teacher_epochs=1)
    assert set(method.model["teachers"]) == {"audio", "text", "visual"}
    _teacher_ready(method, bundle)
    out = method.training_step(first_batch(bundle, 40), 0)
    assert torch.isfinite(out.loss)


def test_bad_window_is_one_line(tmp_path, capsys):
    message = "umt.modulation_ends (1) is before umt.modulation_starts (2)"
    with pytest.raises(UserError, match=re.escape(message)):
        make_method("umt", modulation_starts=2, modulation_ends=1)
    code = cli("run", "--methods", "umt", "--profile", "smoke", "--seeds", "0",
               "--set", "umt.modulation_starts=2", "--set", "umt.modulation_ends=1",
               "--results-dir", str(tmp_path / "r"), "--leaderboard-dir", str(tmp_path / "b"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"amst-bench: error: {message}"]


def _spec():
    return run_spec("umt", {"teacher_epochs": "1"}, epochs=2, synthetic_samples=120)


def test_resumed_run_keeps_its_teachers_and_equals_an_uninterrupted_one(tmp_path):
    bundle = load_bundle(protocol=_spec().protocol)
    whole, resumed = whole_and_resumed(_spec(), bundle, tmp_path, crash_epoch=0)
    assert whole["method_resolved"]["teacher_epochs"] == 1
    assert comparable(resumed) == comparable(whole)
    teachers = {m: {k: v for k, v in r.items() if k != "seconds"}
                for m, r in resumed["method_resolved"]["teachers"].items()}
    assert teachers == {m: {k: v for k, v in r.items() if k != "seconds"}
                        for m, r in whole["method_resolved"]["teachers"].items()}
