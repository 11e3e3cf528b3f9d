"""Balance metrics in every result: the `subset_logits` hook of each method, the value table the
trainer builds from it, and the fields stored at the selected epoch (report/balance.py holds the
pure formulas, tested in test_balance.py)."""

from __future__ import annotations

import itertools

import pytest
import torch

from amst_bench import registry
from amst_bench.data.tensors import TensorSplit, iterate_batches
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import build_config
from amst_bench.report.leaderboard import build_leaderboards
from amst_bench.report.results import ResultStore, RunResult
from amst_bench.train.models import Probes
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer
from tests.helpers import first_batch, load_bundle, make_method, small_protocol
from tests.result_factory import make_result, result_payload

WEIGHTED = {"fusion": "weighted", "fusion_weights.audio": 0.55, "fusion_weights.visual": 0.45}
# (method, options, how one modality's subset logits relate to the prediction's parts)
MULTIMODAL = [
    ("naive", {}, "part"),
    ("ogm-ge", {}, "part"),
    ("ogm-ge", {"fusion": "concat"}, "part"),  # W_m e_m + b/n: the sub-head
    ("pmr", {}, "part"),
    ("mslr", {}, "part"),
    ("mla", {}, "part"),
    ("mla", {"fusion": "entropy"}, "part"),  # one modality: weight 1
    ("mla", WEIGHTED, "weighted"),
    ("amst-alt", {}, "part"),
    ("amst-joint", {}, "part"),
    ("amst-full", {}, "full"),
]


def predict(method, bundle):
    method.model.eval()
    with torch.no_grad():
        return method.predict(first_batch(bundle).inputs)


def proper_subsets(modalities):
    return [frozenset(c) for r in range(1, len(modalities)) for c in itertools.combinations(modalities, r)]


@pytest.mark.parametrize(("name", "options", "single"), MULTIMODAL)
def test_subset_logits_of_every_modality_is_the_prediction_and_of_one_its_own_logits(name, options, single):
    method, bundle = make_method(name, **options)
    pred = predict(method, bundle)
    torch.testing.assert_close(method.subset_logits(pred, frozenset(method.modalities)), pred.logits)
    for m in method.modalities:
        own = method.subset_logits(pred, frozenset({m}))
        if single == "part":
            expected = pred.modality_logits[m]
        elif single == "weighted":
            expected = WEIGHTED[f"fusion_weights.{m}"] * pred.modality_logits[m]
        else:  # amst-full: mean of [alt_m, joint sub-head of m alone]
            joint = method.model["joint"]
            with torch.no_grad():
                sub_head = joint["head"].blocks[m](joint["encoders"][m](first_batch(bundle).inputs[m]))
            expected = (pred.modality_logits[m] + sub_head + joint["head"].bias / 2) / 2
        torch.testing.assert_close(own, expected)


@pytest.mark.parametrize("name", registry.methods.names())
def test_every_registered_method_gives_its_prediction_for_all_modalities(name):
    """Any plugin with a subset rule (the default or its own) reproduces its own fused prediction."""
    try:
        method, bundle = make_method(name)
    except UnsupportedDataset:  # `text`
        method, bundle = make_method(name, dataset="synthetic-avt")
    pred = predict(method, bundle)
    full = method.subset_logits(pred, frozenset(method.modalities))
    if len(method.modalities) < 2:
        assert full is None  # unimodal: no balance metrics
        return
    torch.testing.assert_close(full, pred.logits)


@pytest.mark.parametrize("name", ["naive", "amst-alt", "amst-joint", "amst-full", "mla"])
def test_three_modalities_pairs_are_the_heads_rule(name):
    method, bundle = make_method(name, dataset="synthetic-avt")
    assert method.modalities == ("audio", "text", "visual")
    pred = predict(method, bundle)
    torch.testing.assert_close(method.subset_logits(pred, frozenset(method.modalities)), pred.logits)
    for s in proper_subsets(method.modalities):
        logits = method.subset_logits(pred, s)
        assert logits.shape == pred.logits.shape
        parts = torch.stack([pred.modality_logits[m] for m in sorted(s)])
        if name in ("naive", "amst-joint"):
            torch.testing.assert_close(logits, parts.sum(0))
        elif name in ("amst-alt", "mla"):
            torch.testing.assert_close(logits, parts.mean(0))
        else:
            joint = torch.stack([pred.joint_parts[m] for m in sorted(s)]).sum(0)
            torch.testing.assert_close(logits, (parts.sum(0) + joint) / (len(s) + 1))


def trainer_for(name: str, tmp_path, dataset: str = "synthetic", epochs: int = 2, **options):
    cls = registry.methods.get(name)
    protocol = small_protocol(epochs=epochs)
    spec = RunSpec(cls, build_config(cls, {k: str(v) for k, v in options.items()}), dataset, 0, protocol)
    return Trainer(spec, load_bundle(dataset, protocol), ResultStore(tmp_path))


def test_a_modality_whose_logits_are_zero_has_shapley_zero_and_utilisation_zero(tmp_path):
    trainer = trainer_for("naive", tmp_path)
    method, bundle = make_method("naive")
    for epoch in range(2):  # a little training, so that audio alone is right on some samples
        for batch in iterate_batches(bundle.train, 32):
            method.training_step(batch, epoch)
    with torch.no_grad():  # the visual part of the lsum head is exactly 0: visual adds nothing
        method.model["head"].layers["visual"].weight.zero_()
        method.model["head"].layers["visual"].bias.zero_()
    # All-zero logits predict class 0, so make class 0 the majority: v({visual}) = v(∅). (The
    # training split: the others are too small to leave several samples of each class.)
    train = bundle.train
    count0 = int((train.labels == 0).sum())
    keep = torch.cat([torch.nonzero(train.labels == c).flatten()[: count0 - 1 if c else count0]
                      for c in range(bundle.num_classes)])
    split = TensorSplit({m: t[keep] for m, t in train.inputs.items()}, train.labels[keep])
    probes = Probes(method.modalities, method.embedding_dim, trainer.bundle.num_classes)
    evaluation = trainer.evaluate(method, probes, split)
    assert evaluation.shapley["visual"] == 0.0
    assert evaluation.utilisation["visual"] == 0.0
    assert evaluation.subset_accuracy["visual"] == evaluation.majority_rate
    assert evaluation.subset_accuracy["audio+visual"] == pytest.approx(evaluation.accuracy)
    assert evaluation.shapley["audio"] == pytest.approx(evaluation.accuracy - evaluation.majority_rate)
    assert evaluation.accuracy > evaluation.majority_rate and evaluation.shapley_imbalance == 1.0


def test_the_stored_result_has_the_balance_fields_at_the_selected_epoch(tmp_path):
    trainer = trainer_for("amst-full", tmp_path, epochs=3)
    trainer.run()
    [result] = trainer.store.load_results()
    best = result.best_epoch
    for evaluation in (result.test, result.validation):
        assert set(evaluation.shapley) == set(evaluation.utilisation) == {"audio", "visual"}
        assert set(evaluation.subset_accuracy) == {"audio", "visual", "audio+visual"}
        assert evaluation.subset_accuracy["audio+visual"] == pytest.approx(evaluation.accuracy)
        assert sum(evaluation.shapley.values()) == pytest.approx(
            evaluation.accuracy - evaluation.majority_rate, abs=1e-6
        )
        assert evaluation.shapley_imbalance is not None
    assert result.validation.accuracy == result.best_val_acc == result.curves["val_acc"][best]
    curves = result.curves
    assert {m: c[best] for m, c in curves["val_shapley"].items()} == result.validation.shapley
    assert curves["val_shapley_imbalance"][best] == result.validation.shapley_imbalance
    assert all(len(c) == 3 for c in [*curves["val_shapley"].values(), curves["val_shapley_imbalance"]])


def test_unimodal_results_have_no_balance_metrics(tmp_path):
    trainer = trainer_for("audio", tmp_path, epochs=1)
    trainer.run()
    [result] = trainer.store.load_results()
    assert result.test.shapley == {} and result.test.shapley_imbalance is None
    assert result.test.subset_accuracy == {} and result.test.majority_rate is None
    assert result.validation is not None and result.validation.utilisation == {}
    assert result.curves["val_shapley"] == {} and result.curves["val_shapley_imbalance"] == [None]


def test_three_modalities_are_measured(tmp_path):
    trainer = trainer_for("naive", tmp_path, dataset="synthetic-avt", epochs=1)
    trainer.run()
    [result] = trainer.store.load_results()
    test = result.test
    assert set(test.shapley) == {"audio", "text", "visual"}
    assert len(test.subset_accuracy) == 7 and "audio+text+visual" in test.subset_accuracy
    assert sum(test.shapley.values()) == pytest.approx(test.accuracy - test.majority_rate, abs=1e-6)


def test_schema_2_results_read_without_balance_or_validation():
    payload = result_payload()
    payload["schema"] = 2
    del payload["validation"]
    result = RunResult.from_json(payload)
    assert result.validation is None and result.test.shapley == {} and result.test.shapley_imbalance is None


def with_balance(seed: int, phi: dict[str, float], imbalance: float, u: dict[str, float | None]) -> RunResult:
    payload = result_payload("naive", seed=seed)
    payload["test"] |= {"shapley": phi, "shapley_imbalance": imbalance, "utilisation": u}
    return RunResult.from_json(payload)


def test_accuracy_md_has_a_balance_table_with_means_over_seeds():
    results = [
        with_balance(0, {"audio": 0.30, "visual": 0.10}, 0.5, {"audio": 0.4, "visual": None}),
        with_balance(1, {"audio": 0.32, "visual": 0.14}, 0.3, {"audio": 0.6, "visual": 0.1}),
        make_result("audio"),  # unimodal: no balance, no row
    ]
    text = build_leaderboards(results)["accuracy.md"]
    assert "### Balance (test, at the selected epoch)" in text
    assert "| naive     | synthetic | a/v 0.31/0.12 | 0.40                | a/v 0.50/0.10 | 2   |" in text
    assert "| audio " not in text.split("### Balance")[1].split("## Paper")[0]
    assert "### Balance" not in build_leaderboards([make_result("naive")])["accuracy.md"]
