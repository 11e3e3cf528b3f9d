"""Gradient-Blending: the weights on a scripted loss history, the weighted loss, the estimate's
cadence, the held-out share of the training split, trials on copies, three modalities, resume."""

from __future__ import annotations

import pytest
import torch

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.methods.gblending import LossPoint, blend_weights
from amst_bench.options import build_config
from amst_bench.train.method import MethodContext
from amst_bench.train.trainer import encoder_factory
from tests.helpers import (
    changed,
    cli,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    small_protocol,
    snapshot,
    whole_and_resumed,
)


def test_weights_on_a_scripted_loss_history():
    before = {"audio": LossPoint(1.0, 1.2), "visual": LossPoint(1.0, 1.1), "fused": LossPoint(1.0, 1.0)}
    after = {"audio": LossPoint(0.5, 1.0),   # G = 0.2, O = 0.5 - 0.2 = 0.3 → 0.2 / 0.09
             "visual": LossPoint(0.6, 0.8),  # G = 0.3, O = 0.2 - 0.1 = 0.1 → 0.3 / 0.01 = 30
             "fused": LossPoint(0.4, 1.1)}   # validation loss rose: G < 0 → 0
    w = blend_weights(before, after)
    raw = {"audio": 0.2 / 0.09, "visual": 30.0}
    total = sum(raw.values())
    assert w == pytest.approx({"audio": raw["audio"] / total, "visual": raw["visual"] / total, "fused": 0.0})
    assert sum(w.values()) == pytest.approx(1.0)


def test_overfitting_enters_squared_and_no_gain_gives_equal_weights():
    before = {"a": LossPoint(1.0, 1.0), "b": LossPoint(1.0, 1.0)}
    after = {"a": LossPoint(0.9, 0.8), "b": LossPoint(0.5, 0.8)}  # O = -0.1 and +0.3, same G
    w = blend_weights(before, after)
    assert w["a"] / w["b"] == pytest.approx(9.0)
    flat = blend_weights(before, {"a": LossPoint(0.5, 1.3), "b": LossPoint(0.5, 1.0)})
    assert flat == {"a": 0.5, "b": 0.5}


def test_training_loss_is_the_weighted_sum_of_the_heads(monkeypatch):
    method, bundle = make_method("gblending")
    batch = first_batch(bundle)
    for o in method.optimizers.values():
        monkeypatch.setattr(o, "step", lambda *a, **k: None)  # keep the gradients
    model = method.model
    with torch.no_grad():
        emb = {m: model["encoders"][m](batch.inputs[m]) for m in method.modalities}
        ce = {m: method.cross_entropy(model["unimodal"][m](e), batch.labels) for m, e in emb.items()}
        ce["fused"] = method.cross_entropy(model["head"](emb)[0], batch.labels)
    method.weights = {"audio": 0.25, "visual": 0.0, "fused": 0.75}
    out = method.training_step(batch, 0)
    torch.testing.assert_close(out.loss, 0.25 * ce["audio"] + 0.75 * ce["fused"])
    method.weights = {"audio": 1.0, "visual": 0.0, "fused": 0.0}
    method.training_step(batch, 0)
    assert all(p.grad is not None and p.grad.any() for p in model["unimodal"]["audio"].parameters())
    for part in (model["encoders"]["visual"], model["unimodal"]["visual"], model["head"]):
        assert all(not p.grad.any() for p in part.parameters())  # weight 0: no gradient


def test_estimate_cadence():
    online, _ = make_method("gblending", super_epoch=10)  # small_protocol: 3 epochs
    assert [online.estimates_at(e) for e in range(3)] == [3, 0, 0]
    two, _ = make_method("gblending", super_epoch=2)
    assert [two.estimates_at(e) for e in range(3)] == [2, 0, 1]
    offline, _ = make_method("gblending", mode="offline", super_epoch=1)
    assert [offline.estimates_at(e) for e in range(3)] == [3, 0, 0]


def _in_run(dataset="synthetic", **options):
    protocol = small_protocol()
    bundle = load_bundle(dataset, protocol)
    cls = registry.methods.get("gblending")
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol),
                        train=bundle.train)
    torch.manual_seed(0)
    return cls(build_config(cls, {k: str(v) for k, v in options.items()}), ctx), bundle


def test_held_out_share_is_carved_from_training_only():
    method, bundle = _in_run()
    fit, held = method.estimate_splits()
    n = len(bundle.train)
    assert len(held) == round(0.1 * n) and len(fit) + len(held) == n
    rows = bundle.train.inputs["audio"].flatten(1)
    for part in (fit, held):  # every sample is a training sample
        got = part.inputs["audio"].flatten(1)
        assert bool((((got[:, None] - rows[None]) ** 2).sum(-1).min(1).values == 0).all())


def test_estimate_trains_copies_and_records_the_weights():
    method, bundle = _in_run("synthetic-avt", super_epoch=1, holdout=0.5)
    before = snapshot(method.model)
    method.on_train_epoch_start(0)
    assert not changed(before, method.model) and not changed(before, method.model, "buffer")
    (entry,) = method.history
    assert set(entry["weights"]) == {*bundle.modalities, "fused"} == set(method.weights)
    assert sum(method.weights.values()) == pytest.approx(1.0)
    pts = {k: (LossPoint(**entry["before"][k]), LossPoint(**entry["after"][k])) for k in method.heads}
    befores, afters = {k: b for k, (b, _) in pts.items()}, {k: a for k, (_, a) in pts.items()}
    assert method.weights == blend_weights(befores, afters)
    assert all(a.train < b.train for b, a in pts.values())  # each trial did train its head


def test_needs_two_modalities_and_a_holdout_share():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("gblending").check_supported(None, ("audio",))
    with pytest.raises(UserError, match="gblending.holdout"):
        make_method("gblending", holdout=1.5)


def test_bad_holdout_is_one_line_and_writes_nothing(tmp_path, capsys):
    code = cli("run", "--methods", "gblending", "--profile", "smoke", "--seeds", "0",
               "--set", "gblending.holdout=1.5", "--results-dir", str(tmp_path / "r"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err == ("amst-bench: error: --set gblending.holdout: expected a share between 0 and 1 "
                   "(exclusive), got 1.5")
    assert not (tmp_path / "r").exists()


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    # resumed epoch 1: stored weights
    spec = run_spec("gblending", {"super_epoch": "2", "holdout": "0.8"}, epochs=2)
    bundle = load_bundle()
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=0)
    assert [h["epoch"] for h in whole["method_resolved"]["history"]] == [0]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
