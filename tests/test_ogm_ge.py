"""OGM-GE's mechanism: scores, ratio, coefficient, which gradients are modulated, noise, window."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.ogm_ge import (  # importing registers "ogm-ge"
    modality_scores,
    modulate_gradients,
    ogm_coefficients,
    resolve_alpha,
)
from amst_bench.options import build_config
from amst_bench.report.results import ResultStore
from amst_bench.train.method import MethodContext
from amst_bench.train.trainer import Trainer, encoder_factory
from tests.helpers import first_batch, load_bundle, make_method, run_spec, small_protocol

# ---------------------------------------------------------------------- the formula on a hand-built batch


def test_scores_ratio_and_coefficient_on_hand_built_logits():
    labels = torch.tensor([0, 1])
    # audio: p_true = 0.75 and 0.5; visual: p_true = 0.25 and 0.5 (two classes)
    parts = {
        "audio": torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]]),
        "visual": torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]]),
    }
    scores = modality_scores(parts, labels)
    assert scores == pytest.approx({"audio": 1.25, "visual": 0.75})
    alpha = 0.8
    ratios, coeffs = ogm_coefficients(scores, alpha)
    rho = 1.25 / 0.75
    assert ratios == pytest.approx({"audio": rho, "visual": 1 / rho})
    # the codes' Eq. 10: 1 - tanh(alpha * rho), not 1 - tanh(alpha * (rho - 1))
    assert coeffs == pytest.approx({"audio": 1 - math.tanh(alpha * rho), "visual": 1.0})


def test_visual_dominant_and_tie_goes_to_audio_as_the_original_code():
    _, coeffs = ogm_coefficients({"audio": 1.0, "visual": 3.0}, 0.1)
    assert coeffs == pytest.approx({"audio": 1.0, "visual": 1 - math.tanh(0.1 * 3.0)})
    _, coeffs = ogm_coefficients({"audio": 2.0, "visual": 2.0}, 0.1)  # main.py: ratio_v > 1 false
    assert coeffs == pytest.approx({"audio": 1 - math.tanh(0.1), "visual": 1.0})


def test_three_modalities_ratio_over_the_others_and_argmax_modulated_even_below_one():
    ratios, coeffs = ogm_coefficients({"audio": 1.0, "text": 2.0, "visual": 1.0}, 0.5)
    assert ratios == pytest.approx({"audio": 1 / 3, "text": 1.0, "visual": 1 / 3})
    assert coeffs == pytest.approx({"audio": 1.0, "text": 1 - math.tanh(0.5), "visual": 1.0})
    ratios, coeffs = ogm_coefficients({"audio": 1.0, "text": 1.0, "visual": 1.0}, 0.5)
    assert ratios == pytest.approx({m: 0.5 for m in ratios})  # all below 1: audio still modulated
    assert coeffs == pytest.approx({"audio": 1 - math.tanh(0.25), "text": 1.0, "visual": 1.0})


# ---------------------------------------------------------------------- one training step


def _reference(method, batch):
    """Ratios, coefficients and gradients of plain joint training on a copy of the model."""
    model = copy.deepcopy(method.model)
    embeddings = {m: model["encoders"][m](batch.inputs[m]) for m in method.modalities}
    logits, parts = model["head"](embeddings)
    torch.nn.functional.cross_entropy(logits, batch.labels).backward()
    ratios, coeffs = ogm_coefficients(modality_scores(parts, batch.labels), method.alpha)
    grads = {n: p.grad.clone() for n, p in model["encoders"].named_parameters()}
    return ratios, coeffs, grads, model


def _encoder_grads(method):
    return {n: p.grad for n, p in method.model["encoders"].named_parameters()}


@pytest.mark.parametrize("fusion", ["lsum", "concat"])
def test_step_scales_only_the_dominant_conv_gradients_by_the_coefficient(fusion):
    method, bundle = make_method("ogm-ge", noise="false", alpha="0.8", fusion=fusion)
    batch = first_batch(bundle)
    ratios, coeffs, ref, ref_model = _reference(method, batch)
    before = {n: p.detach().clone() for n, p in method.model["encoders"].named_parameters()}
    method.training_step(batch, epoch=0)
    assert method.last_ratios == pytest.approx(ratios, rel=1e-5)
    assert method.last_coefficients == pytest.approx(coeffs, rel=1e-5)
    dominant = max(ratios, key=ratios.get)
    assert coeffs[dominant] < 0.99 and all(coeffs[m] == 1.0 for m in coeffs if m != dominant)
    scaled = set()
    for name, grad in _encoder_grads(method).items():
        modality = name.split(".")[0]
        factor = coeffs[modality] if grad.dim() == 4 else 1.0
        torch.testing.assert_close(grad, factor * ref[name], rtol=1e-5, atol=1e-7)
        if factor != 1.0:
            scaled.add(name)
    assert scaled and all(n.startswith(dominant + ".") for n in scaled)
    # the optimiser used the modulated gradient: first SGD step p - lr * (k g + wd p)
    opt = method.ctx.protocol.optimizer
    for name, p in method.model["encoders"].named_parameters():
        modality = name.split(".")[0]
        factor = coeffs[modality] if p.dim() == 4 else 1.0
        expected = before[name] - opt.lr * (factor * ref[name] + opt.weight_decay * before[name])
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)
    # the head is never modulated
    for (name, p), (_, q) in zip(
        method.model["head"].named_parameters(), ref_model["head"].named_parameters(), strict=True
    ):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize(("epoch", "modulated"), [(0, True), (50, True), (51, False)])
def test_window_is_inclusive_and_nothing_changes_outside_it(epoch, modulated):
    method, bundle = make_method("ogm-ge", alpha="0.8")  # noise on: outside the window, none either
    batch = first_batch(bundle)
    _, coeffs, ref, _ = _reference(method, batch)
    method.training_step(batch, epoch=epoch)
    assert method.last_modulated is modulated
    grads = _encoder_grads(method)
    identical = all(torch.equal(grads[n], ref[n]) for n in ref)
    assert identical is not modulated


def test_custom_window_start():
    method, bundle = make_method("ogm-ge", modulation_starts=2, modulation_ends=3)
    assert [e for e in range(6) if method.in_window(e)] == [2, 3]
    method.training_step(first_batch(bundle), epoch=1)
    assert method.last_modulated is False


def test_noise_has_the_std_of_the_unmodulated_gradient_on_every_modality():
    method, bundle = make_method("ogm-ge")
    encoders = method.model["encoders"]
    torch.manual_seed(0)
    for p in encoders.parameters():  # large synthetic gradients, so the std estimate is tight
        p.grad = torch.randn_like(p) * 3.0
    raw = {n: p.grad.clone() for n, p in encoders.named_parameters()}
    coeffs = {"audio": 0.5, "visual": 1.0}
    modulate_gradients(encoders, coeffs, noise=True)
    checked = 0
    for name, p in encoders.named_parameters():
        modality, g = name.split(".")[0], raw[name]
        if g.dim() != 4:
            assert torch.equal(p.grad, g)  # BatchNorm, linear: untouched
            continue
        residual = p.grad - coeffs[modality] * g
        if g.numel() >= 1000:
            assert residual.std().item() == pytest.approx(g.std().item(), rel=0.1)
            assert abs(residual.mean().item()) < 0.1 * g.std().item()
            checked += 1
        assert not torch.allclose(residual, torch.zeros_like(residual))  # the undominated get noise too
    assert checked == 2  # one large conv kernel per modality


def test_noise_in_window_perturbs_the_conv_gradients_of_every_modality():
    method, bundle = make_method("ogm-ge", alpha="0.8")
    batch = first_batch(bundle)
    _, coeffs, ref, _ = _reference(method, batch)
    method.training_step(batch, epoch=0)
    grads = _encoder_grads(method)
    for name, g in ref.items():
        if g.dim() == 4:
            modality = name.split(".")[0]
            assert not torch.allclose(grads[name], coeffs[modality] * g)


# ---------------------------------------------------------------------- presets and datasets


def _method_on(dataset_name, preset):
    protocol = small_protocol()
    bundle = load_bundle("synthetic", protocol)
    bundle.name = dataset_name
    cls = registry.methods.get("ogm-ge")
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
    return cls(build_config(cls, {"preset": preset}), ctx)


def test_alpha_and_fusion_resolution_per_preset_and_dataset():
    assert resolve_alpha("amst", "cremad", None) == 0.1
    assert resolve_alpha("amst", "ave", None) == 0.1
    assert resolve_alpha("original", "cremad", None) == 0.8
    assert resolve_alpha("original", "ave", None) == 0.1
    assert resolve_alpha("original", "cremad", 0.3) == 0.3
    amst = _method_on("cremad", "amst").resolved_options()
    original = _method_on("cremad", "original").resolved_options()
    assert (amst["alpha"], amst["fusion"]) == (0.1, "lsum")
    assert (original["alpha"], original["fusion"]) == (0.8, "concat")
    method, _ = make_method("ogm-ge", preset="original", fusion="lsum", alpha="0.5")
    assert (method.resolved_options()["alpha"], method.resolved_options()["fusion"]) == (0.5, "lsum")
    assert type(method.model["head"]).__name__ == "LateSumHead"


def test_three_modalities_amst_generalises_original_refuses():
    with pytest.raises(UnsupportedDataset):
        make_method("ogm-ge", dataset="synthetic-avt", preset="original")
    method, bundle = make_method("ogm-ge", dataset="synthetic-avt", noise="false", alpha="0.8")
    batch = first_batch(bundle)
    ratios, coeffs, ref, _ = _reference(method, batch)
    method.training_step(batch, epoch=0)
    assert set(method.last_ratios) == {"audio", "text", "visual"}
    assert method.last_coefficients == pytest.approx(coeffs, rel=1e-5)
    grads = _encoder_grads(method)
    for name, g in ref.items():
        modality = name.split(".")[0]
        factor = coeffs[modality] if g.dim() == 4 else 1.0
        torch.testing.assert_close(grads[name], factor * g, rtol=1e-5, atol=1e-7)
    # the text encoder has no 4-D weights: never modulated, even as the dominant modality
    text = method.model["encoders"]["text"]
    raw = {n: p.grad.clone() for n, p in text.named_parameters()}
    modulate_gradients(method.model["encoders"], {"audio": 1.0, "text": 0.1, "visual": 1.0}, noise=True)
    assert all(torch.equal(p.grad, raw[n]) for n, p in text.named_parameters())


def test_one_modality_is_unsupported():
    with pytest.raises(UnsupportedDataset):
        _method_on("synthetic", "amst").check_supported(("audio",))


def test_prediction_is_fused_logits_with_head_parts():
    method, bundle = make_method("ogm-ge", fusion="concat")
    batch = first_batch(bundle)
    pred = method.predict(batch.inputs)
    torch.testing.assert_close(pred.logits, sum(pred.modality_logits.values()))
    assert set(pred.modality_logits) == {"audio", "visual"}


@pytest.mark.parametrize("options", [{}, {"preset": "original"}])
def test_two_epoch_trainer_run(tmp_path, options):
    spec = run_spec("ogm-ge", options, epochs=2)
    result = Trainer(spec, load_bundle(), ResultStore(tmp_path)).run()
    curves = result["curves"]
    assert curves["epoch"] == [0, 1] and all(math.isfinite(x) for x in curves["train_loss"])
    assert set(curves["val_head_modality_acc"]) == {"audio", "visual"}
    assert result["method_resolved"]["alpha"] == 0.1
