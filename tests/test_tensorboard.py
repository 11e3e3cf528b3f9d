"""--tensorboard / --wandb: the event files hold what the result's curves hold, the trackers take
every reporter call, and a missing optional package is one line before anything trains."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
from pathlib import Path

import pytest

from amst_bench.report.tracking import EpochRecord, FanOut
from amst_bench.train.trainer import EpochReporter
from tests.helpers import cli, error_line

EPOCHS = 4


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> tuple[dict, Path, str]:
    """A smoke run of amst-alt (audio skipped in epochs 1, 2) tracked by TensorBoard, cut short at
    the end of epoch 2 (its checkpoint keeps epochs 0-1) and finished by `run --tensorboard`, which
    resumes it: its result, its event folder and what the resuming command said."""
    from amst_bench.data.refs import DatasetRef
    from amst_bench.protocol import apply_overrides, get_profile
    from amst_bench.report.results import ResultStore
    from amst_bench.report.tensorboard import TensorBoardTracker
    from amst_bench.runner import GridRequest, execute, plan
    from tests.helpers import Crash, CrashAt

    root = tmp_path_factory.mktemp("tb") / "r"
    overrides = {"epochs": str(EPOCHS)}
    request = GridRequest(
        methods=["amst-alt"],
        datasets=[DatasetRef("synthetic")],
        seeds=[0],
        protocol=apply_overrides(get_profile("smoke"), overrides),
        protocol_overrides=overrides,
    )
    with (
        TensorBoardTracker(root / "tensorboard") as tracker,
        pytest.raises(Crash),
    ):
        execute(plan(request), ResultStore(root), FanOut(tracker, CrashAt(2)))
    args = ["--datasets", "synthetic", "--seeds", "0", "--profile", "smoke", "--set", f"epochs={EPOCHS}"]
    with _stderr() as said:
        assert (
            cli(
                "run",
                "--methods",
                "amst-alt",
                *args,
                "--results-dir",
                str(root),
                "--tensorboard",
                "--no-leaderboard",
            )
            == 0
        )
    [path] = (root / "runs").glob("*.json")
    result = json.loads(path.read_text())
    return result, root / "tensorboard" / result["run_id"], said.getvalue()


@contextlib.contextmanager
def _stderr():
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        yield buffer


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _per_epoch(values: list[float | None]) -> list[tuple[int, float]]:
    return [(e, pytest.approx(v, rel=1e-6, abs=1e-7)) for e, v in enumerate(values) if v is not None]


def test_event_files_hold_the_results_curves_once_per_epoch_after_a_resume(tracked_run):
    result, folder, said = tracked_run
    assert "resumed from its checkpoint, 2/4 epochs done" in said
    assert (
        len(list(folder.glob("events.out.tfevents.*"))) == 2
    )  # the cut-short attempt's and the resumed one's
    curves = result["curves"]
    logged = _scalars(folder)
    assert logged["loss/train"] == _per_epoch(curves["train_loss"])
    assert logged["accuracy/val"] == _per_epoch(curves["val_acc"])
    assert logged["macro_f1/val"] == _per_epoch(curves["val_macro_f1"])
    assert logged["accuracy/test"] == _per_epoch(curves["test_acc"])
    for m in ("audio", "visual"):
        assert logged[f"modality_accuracy/val/{m}"] == _per_epoch(curves["val_modality_acc"][m])
        assert logged[f"balance/shapley/{m}"] == _per_epoch(curves["val_shapley"][m])
        flags = [1.0 if m in trained else 0.0 for trained in curves["trained_modalities"]]
        assert logged[f"trained/{m}"] == _per_epoch(flags)
    assert [v for _, v in logged["trained/audio"]] == [1.0, 0.0, 0.0, 1.0]  # synthetic's audio skip is 3
    assert curves["learning_rates"] and len(logged) > 10
    for name, rates in curves["learning_rates"].items():
        assert logged[f"learning_rate/{name}"] == _per_epoch(rates)
        assert rates == [1e-3] * EPOCHS  # the smoke profile's SGD rate, no StepLR drop in 4 epochs
    assert logged["selected/test_accuracy"] == [
        (result["best_epoch"], pytest.approx(result["test"]["accuracy"]))
    ]


def test_the_result_keeps_one_learning_rate_curve_per_optimiser(tracked_run):
    result, _, _ = tracked_run
    assert set(result["curves"]["learning_rates"]) == {"encoders", "head"}  # amst-alt's two optimisers
    assert result["schema"] == 4


def test_epoch_record_tags_leave_out_what_was_not_measured():
    record = EpochRecord(
        epoch=0,
        train_loss=1.0,
        train_acc=None,
        val_acc=0.5,
        val_macro_f1=0.4,
        test_acc=None,
        val_modality_acc={"audio": 0.3},
        val_head_modality_acc={},
        learning_rates={"opt": 0.1},
        modalities=("audio", "visual"),
        trained=("visual",),
    )
    tags = record.scalars()
    assert tags["trained/audio"] == 0.0 and tags["trained/visual"] == 1.0
    assert "accuracy/test" not in tags and "modality_accuracy/val/visual" not in tags
    assert tags["learning_rate/opt"] == 0.1


def _declared() -> dict[str, inspect.Signature]:
    return {
        n: inspect.signature(m)
        for n, m in vars(EpochReporter).items()
        if callable(m) and not n.startswith("_")
    }


def _trackers():
    from amst_bench.report.tensorboard import TensorBoardTracker
    from amst_bench.report.wandb_offline import WandbOfflineTracker

    return [FanOut, TensorBoardTracker, WandbOfflineTracker]


@pytest.mark.parametrize("index", range(3))
def test_trackers_implement_the_whole_reporter_protocol(index):
    cls = _trackers()[index]
    for name, signature in _declared().items():
        method = getattr(cls, name, None)
        assert callable(method), f"{cls.__name__} lacks {name}"
        assert list(inspect.signature(method).parameters) == list(signature.parameters), name


def test_fan_out_passes_every_call_on_in_order():
    calls = []

    class Recorder:
        def __getattr__(self, name):
            return lambda *args: calls.append((id(self), name, args))

    first, second = Recorder(), Recorder()
    FanOut(first, second).end_epoch(3, 1.0, 0.5, 0.6)
    assert calls == [
        (id(first), "end_epoch", (3, 1.0, 0.5, 0.6)),
        (id(second), "end_epoch", (3, 1.0, 0.5, 0.6)),
    ]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_wandb_without_wandb_is_one_line_before_anything_runs(tmp_path, capsys):
    line = error_line(
        capsys,
        "run",
        "--methods",
        "naive",
        "--profile",
        "smoke",
        "--results-dir",
        str(tmp_path / "r"),
        "--wandb",
    )
    assert line == "amst-bench: error: --wandb: wandb is not installed; install amst-bench[wandb]"
    assert not (tmp_path / "r").exists()


def test_tensorboard_without_tensorboard_is_one_line(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a)
    )
    line = error_line(
        capsys, "ablation", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), "--tensorboard"
    )
    assert (
        line
        == "amst-bench: error: --tensorboard: tensorboard is not installed; install amst-bench[tensorboard]"
    )
    assert not (tmp_path / "r").exists()


def test_wandb_offline_logs_a_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed (extra [wandb], not in the test extra)")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert (
        cli(
            "run",
            "--methods",
            "naive",
            "--datasets",
            "synthetic",
            "--seeds",
            "0",
            "--profile",
            "smoke",
            "--set",
            "epochs=1",
            "--results-dir",
            str(tmp_path / "r"),
            "--wandb",
            "--no-leaderboard",
        )
        == 0
    )
    assert list((tmp_path / "r" / "wandb").rglob("*.wandb")), "no offline run file"
