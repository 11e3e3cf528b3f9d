"""MSLR: one learning rate per modality (groups, values, the rate really used), the dynamic rule on
scripted validation accuracies, static never changing, state round trip, a short Trainer run."""

from __future__ import annotations

import pytest
import torch

import amst_bench.methods.mslr  # noqa: F401
from amst_bench import registry
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.options import build_config
from amst_bench.report.metrics import Evaluation
from amst_bench.report.results import ResultStore
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer
from tests.helpers import first_batch, load_bundle, make_method, small_protocol


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def _groups(method) -> dict[str, dict]:
    return {g["modality"]: g for g in method.optimizers["modalities"].param_groups}


def _rates(method) -> dict[str, float]:
    return {m: g["lr"] for m, g in _groups(method).items()}


def _eval(**head_acc) -> Evaluation:
    return Evaluation(accuracy=0.5, macro_f1=0.5, loss=1.0, modality_accuracy={},
                      head_modality_accuracy=head_acc)


# ------------------------------------------------------------------ groups and rates


@pytest.mark.parametrize("dataset, expected", [
    ("synthetic", {"audio": 1e-3, "visual": 1e-2}),
    ("synthetic-avt", {"audio": 1e-3, "text": 8e-5, "visual": 1e-2}),
])
def test_one_group_per_modality_with_paper_rates_and_only_its_encoder(dataset, expected):
    method, _ = make_method("mslr", dataset=dataset)
    assert set(method.optimizers) == {"modalities", "head"}
    groups = _groups(method)
    assert len(method.optimizers["modalities"].param_groups) == len(expected)
    assert _rates(method) == expected
    for m, g in groups.items():
        assert _ids(g["params"]) == _ids(method.model["encoders"][m].parameters())
        assert g["momentum"] == 0.9 and g["weight_decay"] == 1e-4
    head_groups = method.optimizers["head"].param_groups
    assert len(head_groups) == 1 and head_groups[0]["lr"] == method.ctx.protocol.optimizer.lr
    assert _ids(head_groups[0]["params"]) == _ids(method.model["head"].parameters())


def test_overrides_per_modality_and_fusion_lr():
    method, _ = make_method("mslr", **{"lr.visual": 0.02, "fusion_lr": 0.005})
    assert _rates(method) == {"audio": 1e-3, "visual": 0.02}
    assert method.optimizers["head"].param_groups[0]["lr"] == 0.005
    assert method.resolved_options()["lr"] == {"audio": 1e-3, "visual": 0.02}


def test_head_lr_modality_puts_each_head_block_in_its_modality_group():
    method, _ = make_method("mslr", head_lr="modality")
    assert set(method.optimizers) == {"modalities"}
    head = method.model["head"]
    for m, g in _groups(method).items():
        want = _ids(method.model["encoders"][m].parameters()) | _ids(head.layers[m].parameters())
        assert _ids(g["params"]) == want
    covered = [id(p) for g in method.optimizers["modalities"].param_groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in method.model.parameters())


def test_bad_rates_are_refused():
    with pytest.raises(UserError, match="no modality text"):
        make_method("mslr", **{"lr.text": 1e-4})  # synthetic has audio and visual only
    cls = registry.methods.get("mslr")
    with pytest.raises(UnsupportedDataset, match="depth"):
        cls._resolve_rates(build_config(cls, {}), ("audio", "depth"))


def test_each_modality_is_stepped_with_its_own_rate():
    """First SGD step (empty momentum buffer): p_new = p - lr * (grad + wd * p), per group."""
    method, bundle = make_method("mslr")
    before = {m: [p.detach().clone() for p in enc.parameters()]
              for m, enc in method.model["encoders"].items()}
    method.training_step(first_batch(bundle), epoch=0)
    for m, enc in method.model["encoders"].items():
        lr = _rates(method)[m]
        for p0, p in zip(before[m], enc.parameters(), strict=True):
            torch.testing.assert_close(p.detach(), p0 - lr * (p.grad + 1e-4 * p0))


# ------------------------------------------------------------------ the dynamic rule

AUDIO = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.35, 0.4]
VISUAL = [0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def _script(method, epochs=range(len(AUDIO))):
    seen = []
    for e in epochs:
        method.on_validation_end(e, _eval(audio=AUDIO[e], visual=VISUAL[e]))
        seen.append(_rates(method))
    return seen


def test_dynamic_rule_every_5_epochs_on_the_current_rate():
    method, _ = make_method("mslr", variant="dynamic")
    seen = _script(method)
    a0, v0 = 1e-3, 1e-2
    # epoch 5: window = epochs 1..5 (current included): audio 0.7 / 0.5, visual 0.25 / 0.45
    a5, v5 = a0 * 0.7 / 0.5, v0 * 0.25 / 0.45
    # epoch 10: window = epochs 6..10, applied to the rate set at epoch 5
    a10, v10 = a5 * 0.35 / 0.63, v5 * 0.5 / 0.5
    expected = [(a0, v0)] * 5 + [(a5, v5)] * 5 + [(a10, v10)] * 2
    for e, (got, (a, v)) in enumerate(zip(seen, expected, strict=True)):
        assert got["audio"] == pytest.approx(a, rel=1e-12), e
        assert got["visual"] == pytest.approx(v, rel=1e-12), e
    assert [u["epoch"] for u in method.lr_updates] == [5, 10]
    assert method.lr_updates[0]["ratio"]["audio"] == pytest.approx(1.4)


def test_dynamic_rule_with_short_history_and_zero_mean():
    method, _ = make_method("mslr", variant="dynamic", update_every=1)
    method.on_validation_end(0, _eval(audio=0.2, visual=0.0))  # epoch 0 never updates
    assert _rates(method) == {"audio": 1e-3, "visual": 1e-2}
    method.on_validation_end(1, _eval(audio=0.4, visual=0.0))  # 2 values: mean of what is there
    assert _rates(method)["audio"] == pytest.approx(1e-3 * 0.4 / 0.3)
    assert _rates(method)["visual"] == 1e-2  # window mean 0: left unchanged
    for e in range(2, 8):
        method.on_validation_end(e, _eval(audio=0.4, visual=0.1))
    assert method.acc_history["audio"] == [0.4] * 5  # window of 5


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_steplr_scales_the_adjusted_rate():
    method, _ = make_method("mslr", variant="dynamic")
    _script(method, range(6))
    adjusted = _rates(method)
    step = method.ctx.protocol.optimizer.lr_step
    for _ in range(step):
        method.schedulers["modalities"].step()
    for m, r in _rates(method).items():
        assert r == pytest.approx(adjusted[m] * 0.1)


def test_static_never_changes_the_rates():
    method, _ = make_method("mslr")
    seen = _script(method)
    assert all(r == {"audio": 1e-3, "visual": 1e-2} for r in seen)
    assert method.lr_updates == []
    assert method.acc_history["audio"] == AUDIO[-5:]


def test_dynamic_requires_head_accuracies():
    method, _ = make_method("mslr", variant="dynamic")
    with pytest.raises(RuntimeError, match="visual"):
        method.on_validation_end(0, _eval(audio=0.5))


# ------------------------------------------------------------------ state and end to end


def test_extra_state_round_trip_continues_identically():
    a, _ = make_method("mslr", variant="dynamic")
    _script(a, range(7))
    b, _ = make_method("mslr", variant="dynamic")
    b.load_state_dict(a.state_dict())
    assert _rates(b) == _rates(a)
    assert b.acc_history == a.acc_history
    assert b.resolved_options() == a.resolved_options()
    _script(a, range(7, 12))
    _script(b, range(7, 12))
    assert _rates(b) == _rates(a) and b.lr_updates == a.lr_updates


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_two_epoch_trainer_run(tmp_path, variant):
    cls = registry.methods.get("mslr")
    config = build_config(cls, {"variant": variant, "update_every": "1"})
    spec = RunSpec(cls, config, "synthetic", 0, small_protocol(epochs=2))
    result = Trainer(spec, load_bundle(), ResultStore(tmp_path)).run()
    resolved = result["method_resolved"]
    history = resolved["lr_history"]
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[0] == {"epoch": 0, "audio": 1e-3, "visual": 1e-2}
    head_acc = result["curves"]["val_head_modality_acc"]
    if variant == "static":
        assert history[1] == {"epoch": 1, "audio": 1e-3, "visual": 1e-2}
        assert resolved["lr_updates"] == []
    else:
        (update,) = resolved["lr_updates"]
        assert update["epoch"] == 1
        for m in ("audio", "visual"):
            acc = head_acc[m]
            mean = (acc[0] + acc[1]) / 2
            ratio = acc[1] / mean if mean > 0 else 1.0
            assert update["ratio"][m] == pytest.approx(ratio)
            assert update["lr"][m] == pytest.approx(history[0][m] * ratio)
