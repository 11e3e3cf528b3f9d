"""Shapley-Alt: φ from one validation pass equals the Shapley value of the hand table; the weakest
modality first with k steps, the others one; `every`; resume; three modalities."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import amst_bench.methods.shapley_alt  # noqa: F401
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.methods.shapley_alt import ShapleyAlt, table_from_evaluation, weakest_first
from amst_bench.options import build_config
from amst_bench.report.balance import shapley_values, subsets
from amst_bench.report.results import ResultStore
from amst_bench.train.method import Prediction
from amst_bench.train.models import Probes
from amst_bench.train.trainer import Trainer
from tests.helpers import (
    Crash,
    CrashAt,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
)

# Per modality: the fraction of validation samples its hand-set logits get right, and the weight of
# its one-hot logits. Weights 4 > 2 + 1, so the mean over any subset S predicts what the heaviest
# modality in S predicts: v(S) = accuracy of that modality, by hand.
TWO = {"audio": (0.75, 1.0), "visual": (0.5, 4.0)}  # visual weakest: it drags v(audio+visual) down
THREE = {"audio": (0.8, 2.0), "text": (0.3, 1.0), "visual": (0.6, 4.0)}


def _hand_parts(labels: torch.Tensor, num_classes: int, setup: dict) -> dict[str, torch.Tensor]:
    n = len(labels)
    parts = {}
    for m, (fraction, weight) in setup.items():
        right = torch.arange(n) < round(fraction * n)
        predicted = torch.where(right, labels, (labels + 1) % num_classes)
        parts[m] = weight * F.one_hot(predicted, num_classes).float()
    return parts


def _hand_table(labels: torch.Tensor, setup: dict) -> dict[frozenset[str], float]:
    n = len(labels)
    table = {frozenset(): max(Counter(labels.tolist()).values()) / n}
    for s in subsets(sorted(setup)):
        if s:
            heaviest = max(s, key=lambda m: setup[m][1])
            table[s] = round(setup[heaviest][0] * n) / n
    return table


def _patch_validation_logits(method, setup: dict) -> torch.Tensor:
    """Replace `predict` so that a validation pass yields the hand-set per-modality logits, batch
    by batch in order; returns the validation labels."""
    labels = method.ctx.dataset.val.labels
    parts = _hand_parts(labels, method.ctx.num_classes, setup)
    offset = [0]

    def predict(inputs):
        size = next(iter(inputs.values())).shape[0]
        lo = offset[0] % len(labels)
        offset[0] += size
        chunk = {m: z[lo : lo + size] for m, z in parts.items()}
        return Prediction(torch.stack(list(chunk.values())).mean(0), {}, chunk)

    method.predict = predict
    return labels


def _method_with_phi(dataset: str, setup: dict, seed: int = 0, **options):
    method, bundle = make_method("shapley-alt", dataset=dataset, seed=seed, **options)
    _patch_validation_logits(method, setup)
    method.on_validation_end(0, None)
    del method.predict  # back to the real head
    return method, bundle


def _encoder_step_log(method) -> list[str]:
    """Per step of the encoder optimiser, the one modality whose encoder holds a gradient."""
    encoders, opt = method.model["encoders"], method.optimizers["encoders"]
    log, original = [], opt.step

    def step(*args, **kwargs):
        holding = [m for m, e in encoders.items() if any(p.grad is not None for p in e.parameters())]
        assert len(holding) == 1
        log.append(holding[0])
        return original(*args, **kwargs)

    opt.step = step
    return log


# ---------------------------------------------------------------------- φ


@pytest.mark.parametrize("dataset, setup", [("synthetic", TWO), ("synthetic-avt", THREE)])
def test_phi_is_the_shapley_value_of_the_hand_table(dataset, setup):
    method, _ = make_method("shapley-alt", dataset=dataset)
    labels = _patch_validation_logits(method, setup)
    method.on_validation_end(0, None)
    table = _hand_table(labels, setup)
    expected = shapley_values(table, sorted(setup))
    assert method.phi == pytest.approx(expected, abs=1e-6)
    assert sum(method.phi.values()) == pytest.approx(table[frozenset(setup)] - table[frozenset()], abs=1e-6)
    record = method.phi_history[-1]
    assert record["values"] == pytest.approx(
        {"+".join(sorted(s)) or "{}": v for s, v in table.items()}, abs=1e-6
    )
    assert record["order"] == sorted(expected, key=expected.get) == method.order


def test_phi_is_taken_from_the_trainers_validation_when_it_carries_the_table():
    method, _ = make_method("shapley-alt", dataset="synthetic-avt")
    method.value_table = lambda: pytest.fail("no second validation pass when the table is given")
    table = _hand_table(method.ctx.dataset.val.labels, THREE)
    evaluation = SimpleNamespace(
        subset_accuracy={"+".join(sorted(s)): v for s, v in table.items() if s},
        majority_rate=table[frozenset()],
    )
    method.on_validation_end(0, evaluation)
    assert method.phi == pytest.approx(shapley_values(table, sorted(THREE)))
    assert method.order == ["text", "visual", "audio"]


def test_own_validation_pass_measures_the_same_table_as_the_trainer(tmp_path):
    """The fallback pass and the trainer's evaluation (the results' Shapley fields) agree."""
    method, bundle = make_method("shapley-alt", dataset="synthetic-avt")
    trainer = Trainer(_spec("synthetic-avt"), bundle, ResultStore(tmp_path))
    probes = Probes(method.modalities, method.embedding_dim, bundle.num_classes)
    evaluation = trainer.evaluate(method, probes, bundle.val)
    if not hasattr(evaluation, "subset_accuracy"):
        pytest.skip("this engine's evaluation measures no subset accuracies")
    measured = table_from_evaluation(evaluation, method.modalities)
    assert measured is not None and len(measured) == 8
    assert method.value_table() == pytest.approx(measured, abs=1e-9)


def test_weakest_first_sorts_ascending_with_ties_by_name():
    assert weakest_first({"visual": 0.3, "audio": 0.1, "text": 0.2}) == ["audio", "text", "visual"]
    assert weakest_first({"visual": 0.0, "audio": 0.0}) == ["audio", "visual"]
    assert weakest_first({"visual": -0.2, "audio": 0.4}) == ["visual", "audio"]


# ---------------------------------------------------------------------- schedule


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_before_any_phi_one_step_each_in_sorted_order_as_mla(dataset):
    method, bundle = make_method("shapley-alt", dataset=dataset)
    log = _encoder_step_log(method)
    method.training_step(first_batch(bundle), epoch=0)
    assert log == sorted(method.modalities)


@pytest.mark.parametrize("dataset, setup, k, expected", [
    ("synthetic", TWO, 2, ["visual", "visual", "audio"]),
    ("synthetic", {"audio": (0.3, 4.0), "visual": (0.9, 1.0)}, 3, ["audio"] * 3 + ["visual"]),
    ("synthetic-avt", THREE, 2, ["text", "text", "visual", "audio"]),
    ("synthetic-avt", THREE, 1, ["text", "visual", "audio"]),
])
def test_weakest_gets_k_steps_then_the_others_one_each_by_phi(dataset, setup, k, expected):
    method, bundle = _method_with_phi(dataset, setup, k=k)
    assert method.order == weakest_first(method.phi)
    assert [m for m in method.order] == list(dict.fromkeys(expected))  # φ ascending
    log = _encoder_step_log(method)
    head_steps = []
    original = method.optimizers["head"].step
    method.optimizers["head"].step = lambda *a, **kw: (head_steps.append(1), original(*a, **kw))[1]
    method.training_step(first_batch(bundle), epoch=1)
    assert log == expected
    assert Counter(log) == {m: (k if m == expected[0] else 1) for m in method.modalities}
    assert len(head_steps) == len(expected)


def test_step_equals_a_hand_written_loop_with_a_fresh_forward_for_repeated_steps():
    method, bundle = _method_with_phi("synthetic-avt", THREE, seed=3, k=2)
    reference, _ = _method_with_phi("synthetic-avt", THREE, seed=3, k=2)
    batch = first_batch(bundle)
    out = method.training_step(batch, epoch=1)

    enc, head = reference.model["encoders"], reference.model["head"]
    opts = [reference.optimizers["encoders"], reference.optimizers["head"]]
    emb = {m: enc[m](batch.inputs[m]) for m in sorted(enc)}
    losses = []
    for i, m in enumerate(["text", "text", "visual", "audio"]):
        e = enc[m](batch.inputs[m]) if i == 1 else emb[m]
        loss = F.cross_entropy(head.fc(e), batch.labels)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        losses.append(loss.detach())
    torch.testing.assert_close(out.loss, torch.stack(losses).mean())
    for (name, p), q in zip(method.model.named_parameters(), reference.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    for (name, b), c in zip(method.model.named_buffers(), reference.model.buffers(), strict=True):
        torch.testing.assert_close(b, c, msg=name)


@pytest.mark.parametrize("every, epochs", [(1, [0, 1, 2, 3, 4, 5]), (2, [0, 2, 4]), (3, [0, 3])])
def test_every_recomputes_phi_on_epochs_multiple_of_every(every, epochs):
    method, _ = make_method("shapley-alt", every=every)
    passes = []
    original = method.value_table

    def counted():
        passes.append(1)
        return original()

    method.value_table = counted
    for epoch in range(6):
        method.on_validation_end(epoch, None)
    assert [h["epoch"] for h in method.phi_history] == epochs
    assert len(passes) == len(epochs)  # one validation pass per computation, none in between


def test_phi_pass_leaves_the_model_and_rng_untouched():
    method, _ = make_method("shapley-alt")
    before = {k: v.clone() for k, v in method.model.state_dict().items()}
    rng = torch.get_rng_state()
    method.model.train()
    method.on_validation_end(0, None)
    assert method.model.training
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in method.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # eval mode: BatchNorm statistics untouched


def test_prediction_is_the_even_mean_of_the_shared_head_logits():
    method, bundle = make_method("shapley-alt", dataset="synthetic-avt")
    inputs = first_batch(bundle).inputs
    method.model.eval()
    with torch.no_grad():
        pred = method.predict(inputs)
        for m in method.modalities:
            expected = method.model["head"].fc(method.model["encoders"][m](inputs[m]))
            torch.testing.assert_close(pred.modality_logits[m], expected)
        torch.testing.assert_close(pred.logits, torch.stack(list(pred.modality_logits.values())).mean(0))


def test_bad_options_and_data_raise():
    with pytest.raises(UserError):
        build_config(ShapleyAlt, {"k": "0"})
    with pytest.raises(UserError):
        build_config(ShapleyAlt, {"every": "0"})
    method, _ = make_method("shapley-alt")
    with pytest.raises(UnsupportedDataset):
        method.check_supported(("audio",))


# ---------------------------------------------------------------------- state and end to end


def test_extra_state_round_trip():
    method, _ = _method_with_phi("synthetic-avt", THREE)
    other, _ = make_method("shapley-alt", dataset="synthetic-avt")
    other.load_extra_state(method.extra_state())
    assert (other.phi, other.order, other.phi_history) == (method.phi, method.order, method.phi_history)
    assert other.schedule() == method.schedule() == ["text", "text", "visual", "audio"]


def _spec(dataset="synthetic", epochs=3, **options):
    return run_spec("shapley-alt", options, dataset, epochs=epochs, synthetic_samples=160)






def test_interrupted_run_resumes_to_the_same_result_and_phi_history(tmp_path):
    spec = _spec(epochs=4)
    bundle = load_bundle(protocol=spec.protocol)
    whole = Trainer(spec, bundle, ResultStore(tmp_path / "a")).run()
    store = ResultStore(tmp_path / "b")
    with pytest.raises(Crash):
        Trainer(spec, bundle, store, reporter=CrashAt()).run()
    assert store.checkpoint_path(spec.run_id).is_file()
    resumed = Trainer(spec, bundle, store).run()
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
    assert [h["epoch"] for h in whole["method_resolved"]["phi_history"]] == [0, 1, 2, 3]


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_trainer_run_records_phi_consistent_with_its_own_validation(tmp_path, dataset):
    spec = _spec(dataset=dataset, epochs=3, every="2")
    bundle = load_bundle(dataset, spec.protocol)
    result = Trainer(spec, bundle, ResultStore(tmp_path)).run()
    modalities = sorted(bundle.modalities)
    resolved = result["method_resolved"]
    assert (resolved["every"], resolved["k"], resolved["initial_order"]) == (2, 2, modalities)
    history = resolved["phi_history"]
    assert [h["epoch"] for h in history] == [0, 2]
    curves = result["curves"]
    for h in history:
        assert sorted(h["phi"]) == modalities and h["order"] == weakest_first(h["phi"])
        e = h["epoch"]
        # v(M) is the fused validation accuracy, v({m}) the head's own per-modality accuracy
        assert h["values"]["+".join(modalities)] == pytest.approx(curves["val_acc"][e], abs=1e-6)
        for m in modalities:
            assert h["values"][m] == pytest.approx(curves["val_head_modality_acc"][m][e], abs=1e-6)
        assert sum(h["phi"].values()) == pytest.approx(
            h["values"]["+".join(modalities)] - h["values"]["{}"], abs=1e-6
        )
        for m in modalities:  # the results' own validation Shapley value, where recorded
            if "val_shapley" in curves:
                assert h["phi"][m] == pytest.approx(curves["val_shapley"][m][e], abs=1e-9)
    assert all(math.isfinite(x) for x in curves["train_loss"])
