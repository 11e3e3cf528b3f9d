"""amst-auto (and -joint, -full): skip parameters chosen from warm-up probe-accuracy slopes, on
scripted validation histories, then the schedule, readjustment and resume through the trainer."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from amst_bench import registry
from amst_bench.errors import UserError
from amst_bench.methods.amst_auto import AmstAuto, choose_skips, slope
from amst_bench.options import build_config
from amst_bench.report.metrics import Evaluation
from amst_bench.report.results import ResultStore
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer
from tests.helpers import (
    Crash,
    CrashAt,
    changed,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    small_protocol,
    smoke_run,
    snapshot,
)

AVT = ("audio", "visual", "text")


def _feed(method, history: dict[str, list[float]], first_epoch: int = 0) -> None:
    """Validation results, one per epoch, as the trainer would pass them."""
    length = len(next(iter(history.values())))
    for i in range(length):
        accuracy = {m: values[i] for m, values in history.items()}
        method.on_validation_end(first_epoch + i, Evaluation(0.0, 0.0, 0.0, accuracy))


def _avt(**options):
    return make_method("amst-auto", dataset="synthetic-avt", **options)[0]


# ---------------------------------------------------------------------- the rule, by hand


def test_skips_equal_the_hand_computation_with_rounding():
    # x = 0..4, dx = -2..2, Σdx² = 10; slope = Σ dx·y / 10
    history = {
        "visual": [0.10, 0.12, 0.11, 0.14, 0.15],  # (-.20 - .12 + .14 + .30) / 10 = .012: slowest → 1
        "audio": [0.20, 0.24, 0.28, 0.31, 0.33],  # (-.40 - .24 + .31 + .66) / 10 = .033: 2.75 → 3
        "text": [0.30, 0.33, 0.36, 0.38, 0.40],  # (-.60 - .33 + .38 + .80) / 10 = .025: 2.08 → 2
    }
    method = _avt()
    _feed(method, history)
    resolved = method.resolved_options()
    assert resolved["skip"] == {"audio": 3, "visual": 1, "text": 2}
    (estimate,) = resolved["skip_estimates"]
    assert estimate["from_epoch"] == 5 and estimate["fitted"] == [0, 4]
    assert estimate["rates"] == pytest.approx({"visual": 0.012, "audio": 0.033, "text": 0.025})
    assert resolved["warmup"] == 5 and resolved["max_skip"] == 10 and resolved["readjust_every"] == 0


def test_round_half_up_at_exactly_2_5_and_1_5():
    # warm-up 2: slope = y1 - y0, exact in binary: visual 1/8, audio 5/16 (2.5×), text 3/16 (1.5×)
    method = _avt(warmup=2)
    _feed(method, {"visual": [0.25, 0.375], "audio": [0.25, 0.5625], "text": [0.25, 0.4375]})
    assert method.resolved_options()["skip"] == {"audio": 3, "visual": 1, "text": 2}
    assert choose_skips({"a": 0.1, "b": 0.25}, 10) == {"a": 1, "b": 3}  # Python's round would give 2


@pytest.mark.parametrize("max_skip, audio", [(10, 10), (4, 4)])
def test_clamped_at_max_skip_and_a_modality_that_never_improves_keeps_training(max_skip, audio):
    method = _avt(max_skip=max_skip)
    _feed(method, {
        "visual": [0.100, 0.101, 0.102, 0.103, 0.104],  # .001 per epoch: slowest positive
        "audio": [0.2, 0.3, 0.4, 0.5, 0.6],  # .1: 100× → clamped
        "text": [0.50, 0.50, 0.49, 0.48, 0.47],  # falls: s = 1
    })
    assert method.resolved_options()["skip"] == {"visual": 1, "audio": audio, "text": 1}


def test_every_rate_at_or_below_zero_gives_one_everywhere():
    method = _avt()
    _feed(method, {"visual": [0.3] * 5, "audio": [0.5, 0.4, 0.4, 0.3, 0.3], "text": [0.2] * 5})
    estimate = method.resolved_options()["skip_estimates"][0]
    assert estimate["rates"]["visual"] == 0.0 and estimate["rates"]["text"] == 0.0  # flat is exactly 0
    assert estimate["skip"] == {m: 1 for m in AVT}
    assert choose_skips({}, 10) == {}


def test_slope_is_least_squares_not_the_end_points():
    assert slope([0, 1, 2, 3], [0.0, 0.3, 0.3, 0.3]) == pytest.approx(0.09)  # end points: 0.1
    with pytest.raises(ValueError):
        slope([0], [0.1])


# ---------------------------------------------------------------------- the schedule


def test_warm_up_trains_everything_then_the_rule_from_the_next_epoch_with_absolute_phase():
    method = make_method("amst-auto")[0]  # synthetic: audio, visual
    for epoch in range(5):
        assert method.trained_modalities(epoch) == ("audio", "visual")
        method.on_validation_end(epoch, Evaluation(0, 0, 0, {"audio": 0.2 + 0.03 * epoch,
                                                             "visual": 0.1 + 0.01 * epoch}))
    assert method.resolved_options()["skip"] == {"audio": 3, "visual": 1}
    assert all(method.trained_modalities(e) == ("audio", "visual") for e in range(5))  # warm-up stays
    audio = [e for e in range(5, 20) if "audio" in method.trained_modalities(e)]
    assert audio == [6, 9, 12, 15, 18]  # e mod 3 == 0, epochs from 0
    assert all("visual" in method.trained_modalities(e) for e in range(20))


def test_readjust_every_re_estimates_on_the_last_warmup_epochs_at_the_right_epochs():
    method = make_method("amst-auto", warmup=3, readjust_every=2)[0]
    audio = [0.20, 0.26, 0.32, 0.34, 0.36, 0.50, 0.86, 0.87, 0.88, 0.89]
    visual = [0.10 + 0.02 * e for e in range(10)]
    for epoch in range(10):
        before = len(method.estimates)
        method.on_validation_end(epoch, Evaluation(0, 0, 0, {"audio": audio[epoch], "visual": visual[epoch]}))
        assert len(method.estimates) - before == (1 if epoch in (2, 4, 6, 8) else 0)
    estimates = method.resolved_options()["skip_estimates"]
    assert [e["from_epoch"] for e in estimates] == [3, 5, 7, 9]
    assert [e["fitted"] for e in estimates] == [[0, 2], [2, 4], [4, 6], [6, 8]]
    # audio slopes over each window: .06, .02, .25 (12.5× → clamped), .01 against visual's .02
    assert [e["skip"]["audio"] for e in estimates] == [3, 1, 10, 1]
    assert estimates[2]["rates"]["audio"] == pytest.approx(0.25)
    assert method.resolved_options()["skip"] == {"audio": 3, "visual": 1}  # the warm-up's choice
    trained = ["audio" in method.trained_modalities(e) for e in range(12)]
    # warm-up 0-2 | s=3: 3, not 4 | s=1: 5, 6 | s=10: not 7, 8 | s=1: 9-11
    assert trained == [True] * 3 + [True, False] + [True, True] + [False, False] + [True] * 3


def test_without_readjust_the_warm_up_choice_holds_to_the_end():
    method = make_method("amst-auto", warmup=2)[0]
    _feed(method, {
        "audio": [0.2 + 0.04 * e for e in range(30)],
        "visual": [0.1 + 0.01 * e for e in range(30)],
    })
    assert len(method.estimates) == 1
    assert [e for e in range(2, 30) if "audio" in method.trained_modalities(e)] == list(range(4, 30, 4))


# ---------------------------------------------------------------------- options and state


def test_skip_is_chosen_not_set_and_the_options_are_checked():
    cls = registry.methods.get("amst-auto")
    with pytest.raises(UserError, match="does not let you override 'skip'"):
        build_config(cls, {"skip.audio": "3"})
    with pytest.raises(UserError, match="does not let you override 'skip_enabled'"):
        build_config(cls, {"skip_enabled": "false"})
    with pytest.raises(UserError, match="warmup: expected a value ≥ 2"):
        build_config(cls, {"warmup": "1"})
    with pytest.raises(UserError, match="max_skip: expected a value ≥ 1"):
        build_config(cls, {"max_skip": "0"})
    assert build_config(registry.methods.get("amst-auto-full"), {"joint_loss": "paper"}).joint_loss == "paper"


def test_extra_state_restores_the_window_and_the_chosen_skips_exactly():
    history = {"audio": [0.2 + 0.05 * e for e in range(7)], "visual": [0.1 + 0.01 * e for e in range(7)]}
    a = make_method("amst-auto", warmup=3, readjust_every=3)[0]
    _feed(a, {m: v[:6] for m, v in history.items()})  # estimates after epochs 2 and 5
    b = make_method("amst-auto", warmup=3, readjust_every=3)[0]
    b.load_extra_state(a.extra_state())
    assert b.resolved_options() == a.resolved_options()
    assert [b.trained_modalities(e) for e in range(12)] == [a.trained_modalities(e) for e in range(12)]
    for method in (a, b):  # the same window: the next readjustment (after epoch 8) agrees too
        _feed(method, {m: [0.5, 0.52, 0.53] for m in history}, first_epoch=6)
    assert b.resolved_options() == a.resolved_options() and len(a.estimates) == 3
    with pytest.raises(UserError, match="no skip-estimation state"):
        b.load_extra_state({})


@pytest.mark.parametrize("name", ["amst-auto-joint", "amst-auto-full"])
def test_joint_and_full_follow_the_chosen_schedule(name):
    method, bundle = make_method(name, warmup=2)
    _feed(method, {"audio": [0.2, 0.35], "visual": [0.1, 0.15]})  # 3×
    assert method.resolved_options()["skip"] == {"audio": 3, "visual": 1}
    assert method.trained_modalities(4) == ("visual",) and method.trained_modalities(6) == ("audio", "visual")
    modules = [method.model] if name == "amst-auto-joint" else [method.model["alt"], method.model["joint"]]
    before = [snapshot(m["encoders"]["audio"]) for m in modules]
    method.training_step(first_batch(bundle), epoch=4)
    assert all(changed(b, m["encoders"]["audio"]) == set() for b, m in zip(before, modules, strict=True))


# ---------------------------------------------------------------------- through the trainer






# Probe accuracies the estimate reads, by epoch (the real probes barely move in a 6-epoch tiny run):
# fits over [0, 1]: audio .15 vs visual .05 → audio 3; over [2, 3]: audio .02 vs visual .06 →
# visual 3; over [4, 5]: audio .10 vs visual .05 → audio 2 (from epoch 6: past the run).
SCRIPTED = {"audio": [0.20, 0.35, 0.40, 0.42, 0.50, 0.60], "visual": [0.10, 0.15, 0.20, 0.26, 0.30, 0.35]}


def _scripted_signal(monkeypatch):
    real = AmstAuto.on_validation_end

    def scripted(self, epoch, evaluation):
        accuracy = {m: SCRIPTED[m][epoch] for m in self.modalities}
        real(self, epoch, dataclasses.replace(evaluation, modality_accuracy=accuracy))

    monkeypatch.setattr(AmstAuto, "on_validation_end", scripted)


def test_run_resumed_after_the_warm_up_keeps_its_skips_and_matches_an_uninterrupted_run(
    tmp_path, monkeypatch
):
    _scripted_signal(monkeypatch)
    bundle = load_bundle()
    cls = registry.methods.get("amst-auto")
    config = build_config(cls, {"warmup": "2", "readjust_every": "2"})
    spec = RunSpec(cls, config, "synthetic", 0, small_protocol(epochs=6))
    whole = Trainer(spec, bundle, ResultStore(tmp_path / "whole")).run()
    estimates = whole["method_resolved"]["skip_estimates"]
    assert [(e["from_epoch"], e["skip"]) for e in estimates] == [
        (2, {"audio": 3, "visual": 1}), (4, {"audio": 1, "visual": 3}), (6, {"audio": 2, "visual": 1})
    ]
    assert whole["method_resolved"]["skip"] == {"audio": 3, "visual": 1}
    assert whole["curves"]["trained_modalities"] == [
        ["audio", "visual"], ["audio", "visual"], ["visual"], ["audio", "visual"], ["audio"], ["audio"]
    ]
    store = ResultStore(tmp_path / "resumed")
    with pytest.raises(Crash):  # the last checkpoint is after epoch 2: past the warm-up's estimate
        Trainer(spec, bundle, store, reporter=CrashAt(3)).run()
    assert torch.load(store.checkpoint_path(spec.run_id), weights_only=False)["epoch"] == 2
    resumed = Trainer(spec, bundle, store).run()
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")


def test_cli_run_records_the_chosen_skips_and_trains_by_them(tmp_path):
    """End to end with the real probes: whatever the rates, the record and the curves agree."""
    (result,) = smoke_run(tmp_path, "amst-auto", "synthetic-avt", "--set", "epochs=5", "--set",
                          "amst-auto.warmup=3")
    resolved, trained = result["method_resolved"], result["curves"]["trained_modalities"]
    (estimate,) = resolved["skip_estimates"]
    assert estimate["from_epoch"] == 3 and estimate["skip"] == resolved["skip"]
    assert estimate["skip"] == choose_skips(estimate["rates"], 10)
    assert trained[:3] == [sorted(AVT)] * 3
    assert trained[3:] == [[m for m in sorted(AVT) if e % estimate["skip"][m] == 0] for e in (3, 4)]
