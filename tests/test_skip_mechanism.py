"""AMST's skip rule and what a skip epoch does (and does not do) to each part of the model."""

from __future__ import annotations

import pytest
import torch

from amst_bench import registry
from amst_bench.errors import UserError
from amst_bench.methods.amst_common import SkipSchedule
from amst_bench.options import build_config
from tests.helpers import changed, first_batch, make_method, snapshot

AV = ("audio", "visual")


def test_audio_with_skip_5_trains_exactly_20_of_100_epochs_from_epoch_0():
    schedule = SkipSchedule.resolve(AV, {"audio": 5}, {}, enabled=True)
    audio_epochs = [e for e in range(100) if "audio" in schedule.active(e, AV)]
    assert audio_epochs == list(range(0, 100, 5))
    assert audio_epochs == [e for e in range(100) if schedule.trains("audio", e)]
    assert len(audio_epochs) == 20
    assert all("visual" in schedule.active(e, AV) for e in range(100))


def test_skip_defaults_come_from_dataset_and_disabling_trains_everything():
    assert SkipSchedule.resolve(AV, None, {"audio": 5}).skip == {"audio": 5, "visual": 1}
    off = SkipSchedule.resolve(AV, {"audio": 5}, {}, enabled=False)
    assert off.skip == {"audio": 5, "visual": 1} and off.effective() == {"audio": 1, "visual": 1}
    assert all(off.active(e, AV) == AV for e in range(10))
    with pytest.raises(UserError, match="the dataset has only"):
        SkipSchedule.resolve(AV, {"text": 2}, {})


@pytest.mark.parametrize("value", ["0", "-3"])
def test_skip_values_below_one_are_refused_by_the_option_metadata(value):
    for name in ("amst-alt", "amst-joint", "amst-full"):
        with pytest.raises(UserError, match=f"--set {name}.skip.audio: expected a value ≥ 1"):
            build_config(registry.methods.get(name), {"skip.audio": value})
    with pytest.raises(UserError):
        SkipSchedule({"audio": 0})


@pytest.mark.parametrize("name", ["amst-alt", "amst-joint", "amst-full"])
def test_method_schedule_matches_rule(name):
    method, _ = make_method(name)
    assert isinstance(method.schedule, SkipSchedule)  # held, not inherited
    method.schedule = SkipSchedule({"audio": 5, "visual": 1})
    assert [e for e in range(100) if "audio" in method.trained_modalities(e)] == list(range(0, 100, 5))


def _audio_skip_method(name, **options):
    return make_method(name, **{"skip.audio": 5, **options})


@pytest.mark.parametrize("name", ["amst-alt", "amst-joint"])
def test_skip_epoch_leaves_skipped_encoder_untouched(name):
    method, bundle = _audio_skip_method(name)
    enc = method.model["encoders"]
    before_audio, before_visual = snapshot(enc["audio"]), snapshot(enc["visual"])
    method.training_step(first_batch(bundle), epoch=1)  # 1 % 5 != 0: audio skipped
    assert changed(before_audio, enc["audio"]) == set()
    assert all(p.grad is None for p in enc["audio"].parameters())
    assert changed(before_visual, enc["visual"]) == {n for n, _ in enc["visual"].named_parameters()}
    # 'official': the skipped encoder is still forwarded in train mode, so BatchNorm stats move
    assert changed(before_audio, enc["audio"], kind="buffer")


@pytest.mark.parametrize("name", ["amst-alt", "amst-joint", "amst-full"])
def test_skipped_forward_none_does_not_call_the_encoder(name):
    method, bundle = _audio_skip_method(name, skipped_forward="none")
    calls = []
    audio_encoders = [
        m["encoders"]["audio"] for m in (method.model.values() if name == "amst-full" else [method.model])
    ]
    for enc in audio_encoders:
        enc.register_forward_hook(lambda *_: calls.append(1))
    before = [snapshot(enc) for enc in audio_encoders]
    method.training_step(first_batch(bundle), epoch=1)
    assert calls == []
    for snap, enc in zip(before, audio_encoders, strict=True):
        assert changed(snap, enc, kind="buffer") == set()
        assert changed(snap, enc) == set()
    method.training_step(first_batch(bundle), epoch=5)  # 5 % 5 == 0: audio trained
    assert len(calls) == len(audio_encoders)


@pytest.mark.parametrize("name", ["amst-alt", "amst-joint", "amst-full", "naive"])
def test_non_skip_epoch_updates_every_parameter(name):
    method, bundle = _audio_skip_method(name) if name != "naive" else make_method(name)
    before = snapshot(method.model)
    method.training_step(first_batch(bundle), epoch=0)
    assert changed(before, method.model) == {n for n, _ in method.model.named_parameters()}


def test_joint_sub_head_updates_only_active_blocks():
    method, bundle = _audio_skip_method("amst-joint")
    head = method.model["head"]
    before = snapshot(head)
    method.training_step(first_batch(bundle), epoch=3)
    assert changed(before, head) == {"blocks.visual.weight", "bias"}
    assert head.blocks["audio"].weight.grad is None


def test_concat_sub_head_is_blocks_plus_bias_over_n():
    method, bundle = make_method("amst-joint")
    head = method.model["head"]
    torch.nn.init.normal_(head.bias)
    e = {m: torch.randn(4, method.ctx.embedding_dim) for m in ("audio", "visual")}
    sub, _ = head({"visual": e["visual"]})
    torch.testing.assert_close(sub, head.blocks["visual"](e["visual"]) + head.bias / 2)
    full, _ = head(e)
    expected = head.blocks["audio"](e["audio"]) + head.blocks["visual"](e["visual"]) + head.bias
    torch.testing.assert_close(full, expected)


def test_alternating_step_gives_no_cross_modal_gradient(monkeypatch):
    """Each modality's loss reaches only its own encoder: one optimiser step per modality."""
    from amst_bench.train.method import Method

    method, bundle = make_method("amst-alt")
    seen = []
    original = Method.step

    def spy(optimizers, loss):
        original(optimizers, loss)
        seen.append({m: any(p.grad is not None for p in enc.parameters())
                     for m, enc in method.model["encoders"].items()})

    monkeypatch.setattr(Method, "step", staticmethod(spy))
    method.training_step(first_batch(bundle), epoch=0)
    assert seen == [{"audio": True, "visual": False}, {"audio": False, "visual": True}]
