"""The training loop: determinism, resume after an interruption, selection on validation, records."""

from __future__ import annotations

import math

import pytest

from amst_bench.errors import UnsupportedDataset
from amst_bench.report.results import ResultStore
from amst_bench.train.trainer import Trainer
from tests.helpers import Crash, CrashAt, comparable, load_bundle, run_spec


def _spec(method="amst-alt", seed=0, epochs=3, **options):
    return run_spec(method, options, seed=seed, epochs=epochs)




def test_same_seed_same_metrics_on_cpu(tmp_path):
    bundle = load_bundle()
    a = Trainer(_spec(), bundle, ResultStore(tmp_path / "a")).run()
    b = Trainer(_spec(), bundle, ResultStore(tmp_path / "b")).run()
    assert comparable(a) == comparable(b)
    c = Trainer(_spec(seed=1), bundle, ResultStore(tmp_path / "c")).run()
    assert comparable(c) != comparable(a)




def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    bundle = load_bundle()
    spec = _spec(epochs=4)
    whole = Trainer(spec, bundle, ResultStore(tmp_path / "whole")).run()

    store = ResultStore(tmp_path / "resumed")
    with pytest.raises(Crash):
        Trainer(spec, bundle, store, reporter=CrashAt(2)).run()
    assert not store.has_result(spec.run_id)
    assert store.checkpoint_path(spec.run_id).is_file()
    resumed = Trainer(spec, bundle, store).run()
    assert comparable(resumed) == comparable(whole)
    assert not store.checkpoint_path(spec.run_id).exists()


def test_result_records_protocol_selection_and_timings(tmp_path):
    result = Trainer(_spec(epochs=3), load_bundle(), ResultStore(tmp_path)).run()
    curves = result["curves"]
    best = result["best_epoch"]
    assert curves["val_acc"][best] == max(curves["val_acc"])
    assert curves["val_acc"].index(max(curves["val_acc"])) == best  # first best epoch
    assert result["test"]["accuracy"] == curves["test_acc"][best]
    assert set(result["test"]["modality_accuracy"]) == {"audio", "visual"}
    assert len(curves["train_seconds"]) == len(curves["epoch_seconds"]) == 3
    assert all(t <= e for t, e in zip(curves["train_seconds"], curves["epoch_seconds"], strict=True))
    # On a CPU the process CPU seconds of training are recorded too, per epoch and as the mean.
    assert len(curves["train_cpu_seconds"]) == 3 and all(c > 0 for c in curves["train_cpu_seconds"])
    mean_cpu = sum(curves["train_cpu_seconds"]) / 3
    assert result["seconds_per_epoch"]["train_cpu"] == pytest.approx(mean_cpu)
    assert result["protocol"]["epochs"] == 3 and result["protocol"]["optimizer"]["lr"] == 1e-3
    assert result["method_resolved"]["skip"] == {"audio": 3, "visual": 1}
    assert curves["trained_modalities"] == [["audio", "visual"], ["visual"], ["visual"]]
    assert {"torch", "python", "amst_bench"} <= set(result["versions"])
    assert "cudnn_deterministic" in result["determinism"]


def test_method_that_cannot_run_raises_clear_error(tmp_path):
    spec = _spec(method="text")
    with pytest.raises(UnsupportedDataset, match="needs the text modality"):
        Trainer(spec, load_bundle(), ResultStore(tmp_path)).run()


def test_balance_metrics_per_class_entropy_and_gap(tmp_path):
    result = Trainer(_spec(epochs=2), load_bundle(), ResultStore(tmp_path)).run()
    test = result["test"]
    assert test["entropy_source"] == "head"  # amst-alt's shared head gives per-modality logits
    assert set(test["class_entropy"]) == {"audio", "visual"}
    for values in test["class_entropy"].values():
        assert len(values) == 6 and all(v is None or 0 <= v <= math.log(6) + 1e-6 for v in values)
    accs = test["modality_accuracy"].values()
    assert test["imbalance_gap"] == pytest.approx(max(accs) - min(accs))


def test_class_means_and_entropy_by_hand():
    import torch

    from amst_bench.report.metrics import class_means, prediction_entropy

    assert class_means(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3) == [2.0, None, 5.0]
    uniform = prediction_entropy(torch.zeros(1, 4))
    assert uniform.item() == pytest.approx(math.log(4))
    assert prediction_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_bf16_precision_runs_and_is_recorded(tmp_path):
    import dataclasses

    spec = _spec(epochs=1)
    spec = dataclasses.replace(spec, protocol=dataclasses.replace(spec.protocol, precision="bf16"),
                               overrides={"precision": "bf16"})
    result = Trainer(spec, load_bundle(), ResultStore(tmp_path)).run()
    assert result["protocol"]["precision"] == "bf16" and result["protocol_label"] == "smoke (precision=bf16)"
    assert result["config_hash"] != _spec(epochs=1).config_hash


def test_status_lists_finished_and_resumable_runs(tmp_path, capsys):
    from tests.helpers import cli

    bundle = load_bundle()
    store = ResultStore(tmp_path)
    Trainer(_spec(epochs=2, seed=1), bundle, store).run()
    with pytest.raises(Crash):
        Trainer(_spec(epochs=4), bundle, store, reporter=CrashAt(2)).run()
    assert cli("status", "--results-dir", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "finished     1 run(s)  synthetic" in out
    assert "resumable amst-alt on synthetic, seed 0" in out and "2/4 epochs" in out
    Trainer(_spec(epochs=4), bundle, store).run()  # resumes, then the progress record is gone
    assert store.in_progress() == []
