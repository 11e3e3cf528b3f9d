"""Where the harness follows the official AMST code on purpose: each test breaks when the code's
behaviour is lost (the 512→768 projection, unimodal heads, TF32, test every epoch, AMST-Full's
probes)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.methods.ogm_ge import modulate_gradients
from amst_bench.options import build_config
from amst_bench.report.results import ResultStore
from amst_bench.train.method import Method, MethodContext, Prediction, StepOutput
from amst_bench.train.models import OutConv, ResNet18AudioEncoder, ResNet18VisualEncoder
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer, encoder_factory
from tests.helpers import first_batch, load_bundle, make_method, small_protocol

# ---------------------------------------------------------------------- a, b: the 512→768 projection


def _text_width_encoders():
    torch.manual_seed(0)
    return nn.ModuleDict({"audio": ResNet18AudioEncoder(768), "visual": ResNet18VisualEncoder(768)})


def test_projection_is_a_1x1_conv_that_ogm_ge_modulates_like_the_official_out_conv():
    encoders = _text_width_encoders()
    from amst_bench.train.models import official_init

    encoders.apply(official_init)
    audio, visual = torch.randn(2, 1, 32, 32), torch.randn(2, 2, 3, 32, 32)
    emb = {"audio": encoders["audio"](audio), "visual": encoders["visual"](visual)}
    assert emb["audio"].shape == emb["visual"].shape == (2, 768)
    (emb["audio"].sum() + emb["visual"].sum()).backward()
    proj = encoders["audio"].proj
    assert isinstance(proj, nn.Conv2d) and proj.weight.grad.dim() == 4
    raw = {m: e.proj.weight.grad.clone() for m, e in encoders.items()}
    modulate_gradients(encoders, {"audio": 0.25, "visual": 1.0}, noise=False)
    torch.testing.assert_close(encoders["audio"].proj.weight.grad, 0.25 * raw["audio"])
    torch.testing.assert_close(encoders["visual"].proj.weight.grad, raw["visual"])


def test_projection_after_pooling_equals_the_official_conv_before_pooling():
    torch.manual_seed(0)
    proj = OutConv(768)
    feature_map = torch.randn(3, 512, 4, 5)  # the code: out_conv on the map, then average pooling
    official = F.adaptive_avg_pool2d(F.conv2d(feature_map, proj.weight), 1).flatten(1)
    torch.testing.assert_close(proj(feature_map.mean(dim=(2, 3))), official, rtol=1e-4, atol=1e-5)


def test_projection_init_is_kaiming_fan_out_as_the_official_weight_init():
    """Kaiming normal, fan-out: std sqrt(2 / 768) ≈ 0.051 (Xavier normal would give ≈ 0.040)."""
    from amst_bench.train.models import build_encoder

    for modality, shape in (("audio", (1, 32, 32)), ("visual", (2, 3, 32, 32))):
        torch.manual_seed(0)
        weight = build_encoder(modality, "resnet18", 768, shape).proj.weight
        assert weight.shape == (768, 512, 1, 1)
        assert weight.std().item() == pytest.approx(math.sqrt(2 / 768), rel=0.02)
        assert abs(weight.mean().item()) < 1e-3


# ---------------------------------------------------------------------- c: unimodal baselines


def test_unimodal_heads_audio_visual_official_init_text_pytorch_default():
    for name in ("audio", "visual"):
        method, _ = make_method(name)
        layer = method.model["head"].layers[name]
        assert torch.count_nonzero(layer.bias) == 0  # weight_init: zero bias (Xavier-normal weight)
    text, _ = make_method("text", dataset="synthetic-avt")
    assert torch.count_nonzero(text.model["head"].layers["text"].bias) > 0  # UniBERT: nn.Linear default


def test_unimodal_resnet_encoders_are_not_widened_on_text_datasets():
    protocol = small_protocol(encoder="resnet18", embedding_dim=768)  # what a text dataset's run gets
    bundle = load_bundle("synthetic-avt", protocol)
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
    assert isinstance(ctx.make_encoder("audio").proj, OutConv)  # the multimodal methods' encoder
    for name in ("audio", "visual"):
        cls = registry.methods.get(name)
        method = cls(build_config(cls, {}), ctx)
        assert method.embedding_dim == 512
        assert isinstance(method.model["encoders"][name].proj, nn.Identity)
        assert method.model["head"].layers[name].in_features == 512
        pred = method.predict(first_batch(bundle, 2).inputs)
        assert pred.embeddings[name].shape == (2, 512)


def _spec(method, epochs=3, overrides=None, **options):
    cls = registry.methods.get(method)
    protocol = small_protocol(epochs=epochs)
    overrides = dict(overrides or {})
    if "test_every_epoch" in overrides:
        protocol = dataclasses.replace(protocol, test_every_epoch=overrides["test_every_epoch"] == "true")
    spec = RunSpec(cls, build_config(cls, options), "synthetic", 0, protocol, overrides=overrides)
    return spec


def test_unimodal_runs_with_tf32_forced_on_and_restored_afterwards(tmp_path):
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    bundle = load_bundle()
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        result = Trainer(_spec("audio", epochs=1), bundle, ResultStore(tmp_path / "a")).run()
        assert result["determinism"]["matmul_allow_tf32"] is True
        assert result["determinism"]["cudnn_allow_tf32"] is True
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        naive = Trainer(_spec("naive", epochs=1), bundle, ResultStore(tmp_path / "n")).run()
        assert naive["determinism"]["matmul_allow_tf32"] is False  # --no_tf32: torch's settings kept
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


# ---------------------------------------------------------------------- d: test every epoch


class Scripted(Method):
    """Predicts one class for every sample: `val_classes[epoch]` on validation and
    `test_classes[epoch]` on test (it knows which from on_validation_end); trains nothing."""

    name = "scripted"
    val_classes: tuple[int, ...] = ()
    test_classes: tuple[int, ...] = ()

    def build_model(self):
        return nn.ModuleDict({"head": nn.Linear(1, 1)})

    def on_train_epoch_start(self, epoch):
        self.epoch, self.phase = epoch, "val"

    def training_step(self, batch, epoch):
        return StepOutput(torch.zeros(()), None, {})

    def on_validation_end(self, epoch, evaluation):
        self.phase = "test"

    def predict(self, inputs):
        n = len(next(iter(inputs.values())))
        script = self.val_classes if self.phase == "val" else self.test_classes
        logits = torch.zeros(n, self.ctx.num_classes)
        logits[:, script[self.epoch]] = 1.0
        return Prediction(logits, {})


def scripted_spec(val_classes, test_classes, epochs, **changes):
    cls = type("ScriptedRun", (Scripted,), {"val_classes": val_classes, "test_classes": test_classes,
                                             **changes})
    return RunSpec(cls, build_config(cls, {}), "synthetic", 0, small_protocol(epochs=epochs))


def test_official_scripts_that_test_every_epoch_are_the_methods_that_default_to_it():
    every = {n for n in registry.methods.names() if registry.methods.get(n).test_every_epoch_default}
    assert every == {"mla", "audio", "visual", "text"}  # mla_new.need_run_test, single_modality.py


@pytest.mark.filterwarnings("ignore:Detected call of")  # Scripted trains nothing
@pytest.mark.parametrize(("default", "override", "tested_epochs"), [
    (False, None, [0]),          # the official trainer: test only when validation improves
    (True, None, [0, 1, 2]),     # MLA / unimodal scripts: every epoch
    (True, "false", [0]),        # the user's --set test_every_epoch wins
    (False, "true", [0, 1, 2]),
])
def test_test_every_epoch_default_override_and_record(tmp_path, default, override, tested_epochs):
    """Validation improves only in epoch 0 (the same class is predicted every epoch), so test runs
    in later epochs only when it runs every epoch."""
    spec = scripted_spec((0, 0, 0), (0, 0, 0), 3, test_every_epoch_default=default)
    if override is not None:
        spec.overrides = {"test_every_epoch": override}
        spec.protocol = dataclasses.replace(spec.protocol, test_every_epoch=override == "true")
    result = Trainer(spec, load_bundle(), ResultStore(tmp_path)).run()
    assert [e for e, t in enumerate(result["curves"]["test_acc"]) if t is not None] == tested_epochs
    assert result["method_resolved"]["test_every_epoch"] is (tested_epochs == [0, 1, 2])


# ---------------------------------------------------------------------- e: AMST-Full's probes


def test_amst_full_probes_see_only_the_alternating_modules_embeddings():
    """The trainer's probes read StepOutput.embeddings and Prediction.embeddings: the alternating
    module's (the code's reported `alt_*_h` helpers); no joint-module probe exists here."""
    method, bundle = make_method("amst-full")
    batch = first_batch(bundle)
    alt_encoders = method.model["alt"]["encoders"]
    method.model.eval()
    with torch.no_grad():
        expected = {m: alt_encoders[m](batch.inputs[m]) for m in method.modalities}
        pred = method.predict(batch.inputs)
    assert set(pred.embeddings) == set(method.modalities)
    for m in method.modalities:
        torch.testing.assert_close(pred.embeddings[m], expected[m])
    method.model.train()
    seen = {}
    for name, module in method.model.items():
        for m, enc in module["encoders"].items():
            enc.register_forward_hook(lambda _mod, _in, out, key=(name, m): seen.setdefault(key, out))
    out = method.training_step(batch, epoch=0)
    assert set(out.embeddings) == set(method.modalities)
    assert all(out.embeddings[m] is seen[("alt", m)] for m in method.modalities)
