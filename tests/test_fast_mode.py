"""The opt-in speed settings (`--set speed=fast` or one by one): what they expand to, that they
reach the modules and optimisers, that they are recorded and change a run's identity and label,
and that torch.compile falls back with one message. No timings here (see tests/benchmarks/)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from amst_bench import registry
from amst_bench.options import build_config
from amst_bench.protocol import ADDED_AFTER_PUBLISHING, FAST_PRESET, apply_overrides, get_profile
from amst_bench.report.results import ResultStore
from amst_bench.train.runspec import RunSpec, protocol_label
from amst_bench.train.speed import channels_last_inputs
from amst_bench.train.trainer import Trainer
from tests.helpers import load_bundle, small_protocol

FAST_FIELDS = ("channels_last", "cudnn_benchmark", "fused_sgd", "tf32")


def spec_for(method: str = "naive", overrides: dict[str, str] | None = None, **changes) -> RunSpec:
    protocol = apply_overrides(small_protocol(epochs=1, **changes), overrides or {})
    cls = registry.methods.get(method)
    return RunSpec(cls, build_config(cls, {}), "synthetic", 0, protocol, dict(overrides or {}))


@pytest.fixture(autouse=True)
def backend_flags():
    """Runs set cuDNN and TF32 flags; leave them as found for the next test."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
     torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = saved


def test_speed_fast_expands_to_each_setting_and_an_explicit_field_wins():
    fast = apply_overrides(get_profile("bench"), {"speed": "fast"})
    assert fast.precision == "bf16"
    assert all(getattr(fast, f) for f in FAST_FIELDS)
    assert fast.compile is False  # opt-in on its own
    assert set(FAST_PRESET) == {"precision", *FAST_FIELDS}
    mixed = apply_overrides(get_profile("bench"), {"speed": "fast", "precision": "fp32", "compile": "true"})
    assert mixed.precision == "fp32" and mixed.channels_last and mixed.compile
    default = apply_overrides(get_profile("bench"), {})
    assert default.speed == "default" and not any(getattr(default, f) for f in FAST_FIELDS)


def test_defaults_leave_the_run_identity_as_before_and_each_setting_changes_it():
    plain = spec_for()
    assert not set(ADDED_AFTER_PUBLISHING) & set(plain.identity()["protocol"])
    ids = {plain.run_id}
    for key, value in [(f, "true") for f in (*FAST_FIELDS, "compile")] + [("max_train_steps", "2"),
                                                                         ("speed", "fast")]:
        spec = spec_for(overrides={key: value})
        assert spec.run_id not in ids, key
        ids.add(spec.run_id)
        assert key in spec.identity()["protocol"]


def test_the_protocol_label_groups_fast_runs_apart():
    spec = spec_for(overrides={"speed": "fast"})
    assert protocol_label(spec.protocol, spec.overrides) == "smoke (speed=fast)"


def _start(spec: RunSpec, tmp_path, method_bundle=None):
    trainer = Trainer(spec, method_bundle or load_bundle(protocol=spec.protocol), ResultStore(tmp_path))
    return trainer, trainer._start()


def test_channels_last_reaches_conv_weights_and_inputs(tmp_path):
    trainer, state = _start(spec_for(overrides={"channels_last": "true"}), tmp_path)
    convs = [m for m in state.method.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    batch = trainer.memory_layout(next(iter(_batches(state))))
    assert batch.inputs["audio"].is_contiguous(memory_format=torch.channels_last)
    frames = batch.inputs["visual"].flatten(0, 1)  # as the encoders see the frame stack
    assert frames.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(frames, next(iter(_batches(state))).inputs["visual"].flatten(0, 1))  # same values


def _batches(state):
    from amst_bench.data.tensors import iterate_batches

    return iterate_batches(state.train, 16)


def test_without_channels_last_nothing_changes_layout(tmp_path):
    trainer, state = _start(spec_for(), tmp_path)
    batch = next(iter(_batches(state)))
    assert trainer.memory_layout(batch) is batch
    assert channels_last_inputs({"text": torch.ones(2, 3, dtype=torch.long)})["text"].dtype == torch.long


@pytest.mark.parametrize("method", ["naive", "mslr"])  # mslr builds its own SGD: it is fused too
def test_fused_sgd_reaches_every_optimiser(tmp_path, method):
    trainer, state = _start(spec_for(method, {"fused_sgd": "true"}), tmp_path)
    optimisers = [*state.method.optimizers.values(), state.probe_opt]
    kernel = trainer.speed_record["optimizer_kernel"]
    assert kernel in ("fused", "foreach")
    flag = "fused" if kernel == "fused" else "foreach"
    assert all(g[flag] for o in optimisers for g in o.param_groups)
    _, plain = _start(spec_for(method), tmp_path / "plain")
    assert not any(g.get("fused") for o in plain.method.optimizers.values() for g in o.param_groups)


def test_cudnn_benchmark_is_set_for_the_run_and_recorded(tmp_path):
    trainer, _ = _start(spec_for(overrides={"cudnn_benchmark": "true"}), tmp_path)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    _start(spec_for(), tmp_path / "plain")  # the next run without it gets the official flags back
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic


def test_compile_that_fails_says_so_once_and_runs_uncompiled(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(torch.nn.Module, "compile", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, state = _start(spec_for(overrides={"compile": "true"}), tmp_path)
    messages = [str(w.message) for w in caught if "torch.compile" in str(w.message)]
    assert len(messages) == 1 and "running them uncompiled" in messages[0] and "\n" not in messages[0]
    assert trainer.speed_record["torch_compile"] == "not compiled: RuntimeError: no compiler here"
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in state.method.model.modules())


def test_compile_that_works_compiles_every_encoder(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: compiled.append(self))
    trainer, state = _start(spec_for("amst-full", {"compile": "true"}), tmp_path)
    encoders = [e for e in compiled if e in set(state.method.model.modules())]
    assert trainer.speed_record["torch_compile"] == "compiled"
    assert len(encoders) == 4  # AMST-Full: two modules × two modalities, every one compiled


def test_a_fast_run_records_what_ran(tmp_path):
    spec = spec_for(overrides={"speed": "fast", "max_train_steps": "1"})
    result = Trainer(spec, load_bundle(protocol=spec.protocol), ResultStore(tmp_path)).run()
    assert {k: result["protocol"][k] for k in ("speed", "precision", *FAST_FIELDS, "max_train_steps")} == {
        "speed": "fast", "precision": "bf16", **dict.fromkeys(FAST_FIELDS, True), "max_train_steps": 1}
    assert result["protocol_label"] == "smoke (max_train_steps=1, speed=fast)"
    assert result["determinism"]["cudnn_benchmark"] is True
    assert result["determinism"]["optimizer_kernel"] in ("fused", "foreach")
    assert result["peak_memory_bytes"] > 0  # peak RSS on the CPU


@pytest.mark.parametrize("native", [False, True], ids=["emulated", "native"])
def test_bf16_on_a_cpu_without_bf16_instructions_warns_and_is_recorded(tmp_path, monkeypatch, native):
    monkeypatch.setattr("amst_bench.train.speed.cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr("amst_bench.train.speed._WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, _ = _start(spec_for(overrides={"precision": "bf16"}), tmp_path)
    messages = [str(w.message) for w in caught if "bfloat16 instructions" in str(w.message)]
    if native:
        assert not messages and "cpu_bf16" not in trainer.speed_record
    else:
        assert len(messages) == 1 and "set precision=fp32" in messages[0] and "\n" not in messages[0]
        assert trainer.speed_record["cpu_bf16"] == "emulated"
        with warnings.catch_warnings(record=True) as again:
            warnings.simplefilter("always")
            second, _ = _start(spec_for(overrides={"precision": "bf16"}), tmp_path / "second")
        assert not [w for w in again if "bfloat16" in str(w.message)]  # once per process
        assert second.speed_record["cpu_bf16"] == "emulated"  # but every run records it


def test_max_train_steps_caps_the_training_steps_of_an_epoch(tmp_path, monkeypatch):
    cls = registry.methods.get("naive")
    calls = []
    original = cls.training_step
    monkeypatch.setattr(cls, "training_step", lambda self, batch, epoch: calls.append(epoch)
                        or original(self, batch, epoch))
    protocol = small_protocol(epochs=1)
    bundle = load_bundle(protocol=protocol)
    for cap, expected in ((0, -(-len(bundle.train) // protocol.batch_size)), (1, 1)):
        calls.clear()
        capped = dataclasses.replace(protocol, max_train_steps=cap)
        spec = RunSpec(cls, build_config(cls, {}), "synthetic", 0, capped)
        Trainer(spec, bundle, ResultStore(tmp_path / str(cap))).run()
        assert len(calls) == expected
