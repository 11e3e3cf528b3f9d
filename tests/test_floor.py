"""The compute floor: its batch plan, its measurement, where results keep it, how timing.md shows
it, and `amst-bench bench --device cpu` end to end (tiny encoders; no timing is asserted)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
import torch

from amst_bench.protocol import PROFILES
from amst_bench.report.leaderboard import build_leaderboards
from amst_bench.report.results import ResultFormatError, RunResult
from amst_bench.train.floor import epoch_batch_sizes, measure_floor
from tests.helpers import cli, load_bundle, small_protocol
from tests.result_factory import make_result, result_payload

GPU = {"type": "cuda", "name": "NVIDIA H100"}


def test_the_floor_runs_an_epochs_batch_sizes_capped_by_max_train_steps():
    assert epoch_batch_sizes(150, 64) == [64, 64, 22]
    assert epoch_batch_sizes(128, 64) == [64, 64]
    assert epoch_batch_sizes(150, 64, max_steps=2) == [64, 64]
    assert epoch_batch_sizes(150, 64, max_steps=9) == [64, 64, 22]


def test_measure_floor_times_the_epochs_steps():
    protocol = small_protocol()
    bundle = load_bundle(protocol=protocol)
    floor = measure_floor(bundle, protocol, epochs=1)
    assert floor.seconds_per_epoch > 0
    assert floor.cpu_seconds_per_epoch > 0  # on a CPU, process CPU seconds too
    assert floor.steps == len(epoch_batch_sizes(len(bundle.train), protocol.batch_size)) and floor.epochs == 1
    fast = dataclasses.replace(protocol, max_train_steps=1, channels_last=True, fused_sgd=True,
                               precision="bf16")
    assert measure_floor(bundle, fast, epochs=1).steps == 1


def test_a_result_without_a_floor_reads_and_a_bad_floor_is_refused():
    assert make_result().seconds_per_epoch.floor is None  # files written before the floor existed
    payload = result_payload()
    payload["seconds_per_epoch"]["floor"] = 0.5
    assert RunResult.from_json(payload).seconds_per_epoch.floor == 0.5
    payload["seconds_per_epoch"]["floor"] = 0
    with pytest.raises(ResultFormatError, match="seconds_per_epoch.floor"):
        RunResult.from_json(payload)


def timed(variant, train_s, floor, label="bench", device=GPU):
    payload = result_payload(variant, train_s=train_s, epoch_s=train_s + 1, label=label, profile="bench",
                             device=device, epochs=5)
    payload["seconds_per_epoch"]["floor"] = floor
    return RunResult.from_json(payload)


def test_timing_md_shows_the_floor_and_the_ratio_with_the_plain_joint_model_note():
    results = [timed("naive", 1.1, 1.0), timed("pmr", 3.0, 1.0), make_result("amst-alt", label="bench",
                                                                               profile="bench", device=GPU)]
    text = build_leaderboards(results, figures=False)["timing.md"]
    assert "### Compute floor (plain joint model, batches on the device), seconds per epoch" in text
    ratio = text.split("### Training only ÷ floor")[1]
    assert re.search(r"^\| naive +\| 1\.10 \(n=1, 5 epochs\) \|", ratio, flags=re.M)
    assert "| pmr †" in ratio and "3.00 (n=1, 5 epochs)" in ratio
    assert "| amst-alt †" in ratio  # its per-modality steps: † (methods say so, test_extra_work.py)
    assert "amst-alt" in ratio.split("Floor:")[0] and "| –" in ratio  # measured without a floor: a dash
    assert "Every method's floor is this plain joint model" in text
    no_floor = build_leaderboards([make_result("naive", label="bench", profile="bench")], figures=False)
    assert "floor" not in no_floor["timing.md"].split("## Paper reference")[0]


def test_cpu_bench_runs_get_the_ratio_in_cpu_seconds_too():
    cpu = {"type": "cpu"}
    results = []
    for variant, wall, cpu_s in (("naive", 3.0, 2.1), ("amst-alt", 2.0, 1.4)):
        payload = result_payload(variant, train_s=wall, epoch_s=wall + 1, label="bench", profile="bench",
                                 device=cpu, epochs=2)
        payload["seconds_per_epoch"] |= {"floor": 2.5, "train_cpu": cpu_s, "floor_cpu": 2.0}
        results.append(RunResult.from_json(payload))
    text = build_leaderboards(results, figures=False)["timing.md"]
    table = text.split("### Training only ÷ floor, CPU seconds")[1].split("The same ratio")[0]
    assert re.search(r"^\| naive +\| 1\.05 \(n=1, 2 epochs\) \|", table, flags=re.M)  # 2.1 / 2.0
    assert re.search(r"^\| amst-alt † +\| 0\.70 ", table, flags=re.M)
    gpu = [timed("naive", 1.0, 0.9)]  # a floor, but no CPU seconds (an accelerator's run)
    assert "CPU seconds" not in build_leaderboards(gpu, figures=False)["timing.md"]


def test_fast_and_default_sections_get_a_side_by_side_ratio_on_one_device():
    results = [timed("naive", 2.0, 1.8), timed("naive", 1.0, 0.9, label="bench (speed=fast)"),
               timed("amst-alt", 1.5, 1.8), timed("amst-alt", 1.2, 0.9, label="bench (speed=fast)")]
    text = build_leaderboards(results, figures=False)["timing.md"]
    fast = text.split("## Protocol: bench (speed=fast)")[1].split("## Protocol")[0]
    assert "### Fast ÷ default (`bench`), training only" in fast
    assert "| naive     | 0.50" in fast and "| amst-alt  | 0.80" in fast
    cpu = {"type": "cpu"}
    other_device = [*results[:1], timed("naive", 1.0, 0.9, label="bench (speed=fast)", device=cpu)]
    assert "Fast ÷ default" not in build_leaderboards(other_device, figures=False)["timing.md"]


def test_bench_on_the_cpu_prints_the_floor_and_the_ratio_for_every_method(tmp_path, capsys, monkeypatch):
    # The bench profile with the smoke profile's sizes, so the test takes seconds, not minutes.
    small = dataclasses.replace(PROFILES["smoke"], profile="bench", epochs=1, seeds=(0,), device="auto",
                                synthetic_samples=100)
    monkeypatch.setitem(PROFILES, "bench", small)
    code = cli("bench", "--device", "cpu", "--steps", "1", "--methods", "naive,amst-alt",
               "--results-dir", str(tmp_path / "r"))
    out = capsys.readouterr().out
    assert code == 0
    assert "compute floor, synthetic [bench (device=cpu, max_train_steps=1)]" in out
    ratio = out.split("### Training only ÷ floor")[1].split("Floor:")[0]
    assert "| naive " in ratio and "| amst-alt " in ratio and "–" not in ratio
    stored = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert len(stored) == 2 and len({r["seconds_per_epoch"]["floor"] for r in stored}) == 1  # measured once
    assert all(r["protocol"]["max_train_steps"] == 1 and r["peak_memory_bytes"] > 0 for r in stored)
    timings = [r["seconds_per_epoch"] for r in stored]  # and in CPU seconds, both sides of the ratio
    assert all(t["train_cpu"] > 0 and t["floor_cpu"] > 0 for t in timings)
    assert len({t["floor_cpu"] for t in timings}) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "tpu"], "--device: expected cpu or cuda, got 'tpu'"),
        (["--device", "cpu", "--steps", "0"], "--steps: expected a positive number of training steps"),
        (["--device", "cpu", "--speeds", "default,slow"], "--speeds: expected a comma list of default and"),
        pytest.param(["--device", "cuda"], "--device cuda: CUDA is not available on this machine",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        pytest.param([], "bench: no CUDA device here; use --device cpu to time on the CPU",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    ],
    ids=["unknown-device", "zero-steps", "unknown-speed", "cuda-without-cuda", "no-device-without-cuda"],
)
def test_bench_bad_flags_are_one_line(tmp_path, capsys, args, message):
    assert cli("bench", *args, "--results-dir", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"amst-bench: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())
