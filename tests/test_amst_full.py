"""AMST-Full: its prediction is the documented mean, and `joint_loss` picks how the joint module trains."""

from __future__ import annotations

import pytest
import torch

from amst_bench.train.method import Method
from tests.helpers import first_batch, make_method


def test_prediction_is_mean_of_alternating_logits_and_joint_logits():
    method, bundle = make_method("amst-full")
    method.model.eval()
    inputs = first_batch(bundle).inputs
    with torch.no_grad():
        fused = method.predict(inputs).logits
        alt, joint = method.model["alt"], method.model["joint"]
        audio = alt["head"].fc(alt["encoders"]["audio"](inputs["audio"]))
        visual = alt["head"].fc(alt["encoders"]["visual"](inputs["visual"]))
        j = {m: joint["encoders"][m](inputs[m]) for m in ("audio", "visual")}
        joint_logits = (
            joint["head"].blocks["audio"](j["audio"]) + joint["head"].blocks["visual"](j["visual"])
            + joint["head"].bias
        )
    torch.testing.assert_close(fused, (audio + visual + joint_logits) / 3)


@pytest.mark.parametrize(("joint_loss", "steps_epoch0", "steps_skip_epoch"), [
    ("official", 4, 2),  # alt: audio, visual; joint: audio, visual  |  skip: visual twice
    ("paper", 3, 2),     # alt: audio, visual; joint: one loss       |  skip: visual + sub-head
])
def test_joint_loss_option_sets_joint_update(monkeypatch, joint_loss, steps_epoch0, steps_skip_epoch):
    method, bundle = make_method("amst-full", joint_loss=joint_loss, **{"skip.audio": 5})
    steps = []
    original = Method.step
    monkeypatch.setattr(Method, "step", staticmethod(lambda o, loss: (steps.append(1), original(o, loss))))
    method.training_step(first_batch(bundle), epoch=0)
    assert len(steps) == steps_epoch0
    steps.clear()
    method.training_step(first_batch(bundle), epoch=2)
    assert len(steps) == steps_skip_epoch


def test_full_has_four_encoders_and_separate_optimisers():
    method, _ = make_method("amst-full")
    assert set(method.optimizers) == {"alt.encoders", "alt.head", "joint.encoders", "joint.head"}
    alt_ids = {id(p) for p in method.model["alt"].parameters()}
    assert not alt_ids & {id(p) for p in method.model["joint"].parameters()}
    assert len(method.model["alt"]["encoders"]) + len(method.model["joint"]["encoders"]) == 4
