"""The result schema (RunResult, RunProgress): round trips, version 1 files, and what the trainer writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amst_bench.report.metrics import Evaluation
from amst_bench.report.results import (
    SCHEMA_VERSION,
    Device,
    ResultStore,
    RunProgress,
    RunResult,
    Timing,
)
from tests.result_factory import make_result, result_payload

COMMITTED = Path(__file__).resolve().parents[1] / "published"  # the published tree behind leaderboards/


def test_round_trip_through_json():
    result = make_result("amst-alt", acc=0.7, device={"type": "cuda", "name": "GPU X", "cc": "9.0"})
    assert isinstance(result.test, Evaluation) and result.test.accuracy == 0.7
    assert result.seconds_per_epoch == Timing(train=1.0, epoch=1.0, epochs=12)
    assert result.device.label == "GPU X" and result.device.extra == {"cc": "9.0"}
    payload = result.to_json()
    assert payload["schema"] == SCHEMA_VERSION == 4
    assert payload["device"] == {"type": "cuda", "name": "GPU X", "cc": "9.0"}
    assert RunResult.from_json(json.loads(json.dumps(payload))) == result


def test_cpu_device_record_keeps_its_shape():
    record = {"type": "cpu", "platform": "Linux", "processor": "x86_64", "torch_threads": 2}
    device = Device.from_record(record)
    assert device.is_cpu and device.label == "cpu"
    assert device.to_json() == record


def test_version_1_files_are_read():
    payload = result_payload(epochs=7)
    payload["schema"] = 1
    del payload["seconds_per_epoch"]["epochs"], payload["embedding_dim"], payload["text_encoder"]
    result = RunResult.from_json(payload)
    assert result.seconds_per_epoch.epochs == 7  # from the per-epoch curve
    assert result.embedding_dim is None and result.text_encoder is None
    assert result.to_json()["schema"] == SCHEMA_VERSION


def test_committed_results_are_all_readable():
    results, skipped = ResultStore(COMMITTED).scan_results()
    assert skipped == [] and len(results) == len(list((COMMITTED / "runs").glob("*.json"))) > 0
    assert all(r.seconds_per_epoch.epochs == len(r.curves["epoch_seconds"]) for r in results)


def test_progress_record_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    progress = RunProgress("r1", "amst-alt", "synthetic", 0, "smoke", 2, 4, 0.5)
    store.save_checkpoint("r1", {"epoch": 1}, progress)
    assert store.in_progress() == [progress]
    store.drop_checkpoint("r1")
    assert store.in_progress() == []


def test_the_trainer_writes_what_the_store_reads(tmp_path):
    from amst_bench import registry
    from amst_bench.options import build_config
    from amst_bench.train.runspec import RunSpec
    from amst_bench.train.trainer import Trainer
    from tests.helpers import load_bundle, small_protocol

    cls = registry.methods.get("naive")
    spec = RunSpec(cls, build_config(cls, {}), "synthetic", 0, small_protocol(epochs=2))
    store = ResultStore(tmp_path)
    returned = Trainer(spec, load_bundle(), store).run()
    [result] = store.load_results()
    assert json.loads(store.result_path(spec.run_id).read_text())["schema"] == SCHEMA_VERSION
    assert result.to_json() == json.loads(json.dumps(returned))
    assert result.seconds_per_epoch.epochs == 2 and result.device.is_cpu
    assert result.test is not None and result.test.accuracy == result.curves["test_acc"][result.best_epoch]


@pytest.mark.parametrize("missing", ["epochs_done", "run_id"])
def test_progress_record_fields_are_required(missing):
    payload = RunProgress("r1", "naive", "synthetic", 0, "smoke", 1, 2, 0.1).to_json()
    del payload[missing]
    with pytest.raises(ValueError, match=f"field '{missing}': missing"):
        RunProgress.from_json(payload)


def test_committed_leaderboards_are_what_the_committed_results_generate():
    from amst_bench.report.leaderboard import build_leaderboards

    results = ResultStore(COMMITTED).load_results()
    boards = COMMITTED.parent / "leaderboards"
    for name, text in build_leaderboards(results).items():
        rerun = f"leaderboards/{name}: rerun `amst-bench leaderboard --published`"
        assert (boards / name).read_text() == text, rerun
