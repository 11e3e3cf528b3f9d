"""MILES: parameter groups, the rule on scripted accuracies (μ exactly when δ > τ, never cumulative,
StepLR on top), u_m against a hand computation, γ = 0, three modalities, resume, the smoke grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import amst_bench.methods.miles  # noqa: F401
from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.report.metrics import Evaluation
from amst_bench.report.results import ResultStore
from amst_bench.train.trainer import Trainer
from tests.helpers import (
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    smoke_run,
    whole_and_resumed,
)

LR = 1e-3  # the protocol's rate


def _ids(params) -> set[int]:
    return {id(p) for p in params}


def _rates(method) -> dict[str, float]:
    return {g["modality"]: g["lr"] for g in method.optimizers["encoders"].param_groups}


def _eval() -> Evaluation:
    return Evaluation(accuracy=0.0, macro_f1=0.0, loss=0.0, modality_accuracy={})


# ------------------------------------------------------------------ model and optimisers


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_one_group_per_encoder_and_one_for_all_heads(dataset):
    method, bundle = make_method("miles", dataset=dataset)
    assert set(method.optimizers) == {"encoders", "heads"}
    groups = method.optimizers["encoders"].param_groups
    assert [g["modality"] for g in groups] == list(bundle.modalities)
    for g in groups:
        assert _ids(g["params"]) == _ids(method.model["encoders"][g["modality"]].parameters())
        assert g["lr"] == LR and g["momentum"] == 0.9 and g["weight_decay"] == 1e-4
    (heads,) = method.optimizers["heads"].param_groups
    assert heads["lr"] == LR
    assert _ids(heads["params"]) == _ids(method.model["head"].parameters()) | _ids(
        method.model["unimodal"].parameters())
    covered = [id(p) for o in method.optimizers.values() for g in o.param_groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in method.model.parameters())
    assert set(method.model["unimodal"]) == set(bundle.modalities)


def test_needs_two_modalities():
    cls = registry.methods.get("miles")
    with pytest.raises(UnsupportedDataset, match="two or more"):
        cls.check_supported(None, ("audio",))


# ------------------------------------------------------------------ the rule on scripted accuracies

# (A_all, A_¬audio, A_¬visual) → the modality slowed for the next epoch (τ = 0.2)
SCRIPT = [
    ((0.5, 0.2, 0.45), "audio"),   # u = 0.6, 0.1: δ = 0.5
    ((0.5, 0.2, 0.45), "audio"),   # again: still μ once, not μ²
    ((0.5, 0.4, 0.45), None),      # u = 0.2, 0.1: δ = 0.1 → back to the base rate
    ((0.5, 0.45, 0.2), "visual"),  # the other one dominates
    ((0.5, 0.6, 0.2), "visual"),   # u_audio < 0 still counts in δ
    ((0.0, 0.0, 0.0), None),       # A_all = 0: u undefined, nothing slowed
    ((0.5, 0.2, 0.45), "audio"),
]


@pytest.mark.parametrize("mu", [0.5, 0.3])
def test_dominant_rate_times_mu_exactly_when_delta_above_tau_never_cumulative(mu):
    method, _ = make_method("miles", mu=mu)
    for epoch, ((a_all, a_not_audio, a_not_visual), slowed) in enumerate(SCRIPT):
        entry = method.update(epoch, a_all, {"audio": a_not_audio, "visual": a_not_visual})
        assert entry["slowed"] == slowed, epoch
        assert _rates(method) == {m: LR * mu if m == slowed else LR for m in ("audio", "visual")}, epoch
        assert entry["next_lr"] == _rates(method)
    assert [h["slowed"] for h in method.history] == [s for _, s in SCRIPT]
    assert method.history[0]["u"] == pytest.approx({"audio": 0.6, "visual": 0.1})
    assert method.history[0]["delta"] == pytest.approx(0.5)
    assert method.history[5]["u"] == {"audio": None, "visual": None} and method.history[5]["delta"] is None


def test_delta_equal_to_tau_does_not_slow():
    method, _ = make_method("miles", tau=0.25)
    assert method.update(0, 1.0, {"audio": 0.5, "visual": 0.75})["slowed"] is None  # δ = 0.25 exactly
    assert method.update(1, 1.0, {"audio": 0.5, "visual": 0.875})["slowed"] == "audio"  # δ = 0.375


def test_three_modalities_slow_the_largest_u_and_use_max_minus_min():
    method, _ = make_method("miles", dataset="synthetic-avt")
    entry = method.update(0, 0.8, {"audio": 0.4, "visual": 0.7, "text": 0.6})  # u = .5, .125, .25
    assert entry["slowed"] == "audio" and entry["delta"] == pytest.approx(0.375)
    assert _rates(method) == {"audio": LR * 0.5, "visual": LR, "text": LR}
    entry = method.update(1, 0.8, {"audio": 0.7, "visual": 0.7, "text": 0.6})  # u = .125, .125, .25
    assert entry["slowed"] is None  # δ = 0.125
    assert _rates(method) == {"audio": LR, "visual": LR, "text": LR}


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_steplr_applies_on_top_and_the_factor_does_not_compound_with_it():
    method, _ = make_method("miles")
    method.update(0, 0.5, {"audio": 0.2, "visual": 0.45})  # audio slowed
    step = method.ctx.protocol.optimizer.lr_step
    for _ in range(step):  # as the trainer: StepLR steps, then validation sets the next rates
        for s in method.schedulers.values():
            s.step()
    method.update(step - 1, 0.5, {"audio": 0.2, "visual": 0.45})
    assert _rates(method) == pytest.approx({"audio": LR * 0.1 * 0.5, "visual": LR * 0.1})
    assert method.optimizers["heads"].param_groups[0]["lr"] == pytest.approx(LR * 0.1)
    method.update(step, 0.5, {"audio": 0.4, "visual": 0.45})
    assert _rates(method) == pytest.approx({"audio": LR * 0.1, "visual": LR * 0.1})


# ------------------------------------------------------------------ u_m by hand on a tiny model


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
@pytest.mark.parametrize("absent, fusion", [("unimodal", "lsum"), ("masked", "lsum"), ("masked", "msum"),
                                            ("unimodal", "concat")])
def test_u_equals_a_hand_computation_on_the_validation_split(dataset, absent, fusion):
    method, bundle = make_method("miles", dataset=dataset, absent=absent, fusion=fusion)
    for _ in range(3):
        method.training_step(first_batch(bundle, 64), epoch=0)
    model = method.model
    model.eval()
    with torch.no_grad():
        val = bundle.val
        emb = {m: model["encoders"][m](val.inputs[m]) for m in bundle.modalities}
        fused, parts = model["head"](emb)
        uni = {m: model["unimodal"][m](emb[m]) for m in bundle.modalities}
    model.train()
    a_all = _accuracy(fused, val.labels)
    expected = {}
    for m in bundle.modalities:
        rest = [k for k in bundle.modalities if k != m]
        if absent == "unimodal":
            logits = sum(uni[k] for k in rest)  # two modalities: the other one's head alone
        else:
            logits = sum(parts[k] for k in rest) / (len(rest) if fusion == "msum" else 1)
        expected[m] = (a_all - _accuracy(logits, val.labels)) / a_all
    assert a_all > 0
    method.on_validation_end(0, _eval())
    (entry,) = method.history
    assert entry["acc_all"] == pytest.approx(a_all)
    assert entry["u"] == pytest.approx(expected)
    assert model.training  # measuring leaves the model as it found it


# ------------------------------------------------------------------ γ


def test_gamma_zero_removes_the_unimodal_losses():
    with_aux, bundle = make_method("miles", seed=3)
    without, _ = make_method("miles", seed=3, gamma=0)
    batch = first_batch(bundle)
    with torch.no_grad():  # the unimodal CEs at the (shared) initialisation
        emb = {m: with_aux.model["encoders"][m](batch.inputs[m]) for m in bundle.modalities}
        aux = sum(F.cross_entropy(with_aux.model["unimodal"][m](e), batch.labels) for m, e in emb.items())
    before = [p.detach().clone() for p in without.model["unimodal"].parameters()]
    loss_with = with_aux.training_step(batch, epoch=0).loss
    loss_without = without.training_step(batch, epoch=0).loss
    assert float(loss_with - loss_without) == pytest.approx(float(aux), rel=1e-5)
    for p, p0 in zip(without.model["unimodal"].parameters(), before, strict=True):
        assert p.grad is None or not p.grad.any()
        assert torch.equal(p.detach(), p0)
    assert all(p.grad is not None and p.grad.any() for p in with_aux.model["unimodal"].parameters())


# ------------------------------------------------------------------ trainer runs, resume, smoke grid




def _spec(dataset: str, epochs: int, **options):
    return run_spec("miles", {k: str(v) for k, v in options.items()}, dataset, epochs=epochs)


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_two_epoch_trainer_run_records_what_was_slowed(tmp_path, dataset):
    result = Trainer(_spec(dataset, 2), load_bundle(dataset), ResultStore(tmp_path)).run()
    resolved = result["method_resolved"]
    history, trained = resolved["history"], resolved["lr_history"]
    assert [h["epoch"] for h in history] == [0, 1] and [h["epoch"] for h in trained] == [0, 1]
    modalities = sorted(history[0]["u"])
    assert trained[0] == {"epoch": 0} | dict.fromkeys(modalities, LR)
    slowed = history[0]["slowed"]
    assert trained[1] == {"epoch": 1} | {m: LR * 0.5 if m == slowed else LR for m in modalities}
    assert history[0]["acc_all"] == pytest.approx(result["curves"]["val_acc"][0])




def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    bundle = load_bundle()
    spec = _spec("synthetic", 4, tau=0.0)  # τ = 0: a modality is slowed almost every epoch
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=1)  # checkpoint of epoch 0 kept
    assert any(h["slowed"] for h in whole["method_resolved"]["history"][:2])
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")


def test_smoke_grid_end_to_end(tmp_path):
    results = smoke_run(tmp_path, "miles", "synthetic,synthetic-avt")
    assert sorted(r["dataset"] for r in results) == ["synthetic", "synthetic-avt"]
    assert all(r["method"] == "miles" and len(r["method_resolved"]["history"]) == 1 for r in results)
