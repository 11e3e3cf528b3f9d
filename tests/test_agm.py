"""AGM: mono-modal responses (the code's formulas for two and three modalities), coefficients on
hand-built scores, the scaled gradient, the window and running score, three modalities, resume."""

from __future__ import annotations

import math

import pytest
import torch

from amst_bench import registry
from amst_bench.methods.agm import (
    ScaleGrad,
    agm_coefficients,
    mono_modal_responses,
    proper_subsets,
    response_scores,
)
from tests.helpers import (
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    small_protocol,
    whole_and_resumed,
)

F = frozenset


def test_two_modality_responses_are_the_codes_modality_audio_and_visual():
    total, pad_v, pad_a = torch.randn(3, 4, 6).unbind(0)  # v(av), v(a) (visual padded), v(v)
    r = mono_modal_responses({F({"audio", "visual"}): total, F({"audio"}): pad_v, F({"visual"}): pad_a},
                             ("audio", "visual"))
    torch.testing.assert_close(r["audio"], 0.5 * (total - pad_a + pad_v))  # CREMAD_net.Modality_Audio
    torch.testing.assert_close(r["visual"], 0.5 * (total - pad_v + pad_a))
    torch.testing.assert_close(r["audio"] + r["visual"], total)


def test_three_modality_responses_are_the_urfunny_formulas():
    mods = ("audio", "text", "visual")
    v = {s: torch.randn(5, 2) for s in [F(mods), *proper_subsets(mods)]}
    a, t, vis = F({"audio"}), F({"text"}), F({"visual"})
    r = mono_modal_responses(v, mods)
    expected_audio = (v[F(mods)] - v[t | vis] + v[a]) / 3 + (v[a | t] - v[vis] + v[a | vis] - v[t]) / 6
    expected_text = (v[F(mods)] - v[a | vis] + v[t]) / 3 + (v[a | t] - v[vis] + v[t | vis] - v[a]) / 6
    torch.testing.assert_close(r["audio"], expected_audio)
    torch.testing.assert_close(r["text"], expected_text)
    torch.testing.assert_close(r["audio"] + r["text"] + r["visual"], v[F(mods)])


def test_scores_are_mean_nll_floored_at_1e_minus_8():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, -100.0]])  # p[y]=.75; p[y] < 1e-8
    labels = torch.tensor([1, 1])
    s = response_scores({"audio": logits, "visual": torch.zeros(2, 2)}, labels)
    assert s["audio"] == pytest.approx((-math.log(0.75) - math.log(1e-8)) / 2, rel=1e-5)
    assert s["visual"] == pytest.approx(math.log(2.0), rel=1e-5)


def test_coefficients_on_hand_built_scores():
    # audio learns faster now (lower loss) than its running history says: damp audio, boost visual
    ratio, optimal, c = agm_coefficients({"audio": 0.5, "visual": 1.5}, {"audio": 1.0, "visual": 1.0},
                                         alpha=0.7, max_gap=10)
    assert ratio == pytest.approx({"audio": math.e, "visual": 1 / math.e})  # the code's exp(s_v - s_a)
    assert optimal == pytest.approx({"audio": 1.0, "visual": 1.0})
    assert c["audio"] == pytest.approx(math.exp(0.7 * (1 - math.e))) and c["audio"] < 1
    assert c["visual"] == pytest.approx(math.exp(0.7 * (1 - 1 / math.e))) and c["visual"] > 1
    # clamp of optimal - ratio at max_gap
    _, _, c = agm_coefficients({"audio": 5.0, "visual": 0.0}, {"audio": 0.0, "visual": 5.0}, 1.0, 2.0)
    assert c["audio"] == pytest.approx(math.exp(2.0))
    # three modalities: exp(3/2 (mean - s_m)), the URFunny code's factor
    ratio, _, _ = agm_coefficients({"a": 1.0, "t": 2.0, "v": 3.0}, {"a": 0, "t": 0, "v": 0}, 1.0, 7.0)
    assert ratio == pytest.approx({"a": math.exp(1.5), "t": 1.0, "v": math.exp(-1.5)})


def test_scale_grad_scales_only_the_backward():
    x = torch.randn(4, 3, requires_grad=True)
    y = ScaleGrad.apply(x, 0.25)
    assert torch.equal(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.25))


def test_step_gradient_is_the_scaled_sum_of_responses():
    """The encoders' gradient equals autograd of Σ_m c_m·r_m with the step's own coefficients: the
    core rule (without it, i.e. c = 1, the audio and visual gradients would both differ)."""
    method, bundle = make_method("agm", seed=1, clip=0)
    batch = first_batch(bundle)
    method.running = {"audio": 2.0, "visual": 1.5}  # away from the batch: coefficients away from 1
    method.iterations = 10
    reference, _ = make_method("agm", seed=1, clip=0)
    reference.load_state_dict(method.state_dict())
    method.training_step(batch, epoch=0)
    c = method.last_coefficients
    assert abs(c["audio"] - 1) > 0.05 and abs(c["visual"] - 1) > 0.05 and method.scale == c
    model = reference.model
    emb = reference.encode(model["encoders"], batch.inputs, reference.modalities)
    full, _ = model["head"](emb)
    model.eval()  # the code's padded forwards: one whole forward per subset, inputs zeroed
    values = {F(reference.modalities): full}
    for s in proper_subsets(reference.modalities):
        padded = {m: x if m in s else torch.zeros_like(x) for m, x in batch.inputs.items()}
        values[s] = model["head"](reference.encode(model["encoders"], padded, reference.modalities))[0]
    model.train()
    r = mono_modal_responses(values, reference.modalities)
    fused = sum(c[m] * r[m] + (1 - c[m]) * r[m].detach() for m in r)
    torch.nn.functional.cross_entropy(fused, batch.labels).backward()
    lr = method.ctx.protocol.optimizer.lr
    for (name, p_after), (_, p_ref) in zip(method.model.named_parameters(), model.named_parameters(),
                                           strict=True):
        if p_ref.grad is None:
            continue
        # first SGD step from zero momentum: Δp = −lr·(g + wd·p)
        wd = method.ctx.protocol.optimizer.weight_decay
        expected = p_ref.detach() - lr * (p_ref.grad + wd * p_ref.detach())
        torch.testing.assert_close(p_after.detach(), expected, rtol=1e-4, atol=1e-6, msg=name)


def test_running_score_window_and_after_window():
    method, bundle = make_method("agm", modulation_starts=1, modulation_ends=1)
    batch = first_batch(bundle)
    seen, history = [], []
    for epoch in (0, 1, 2):
        before = dict(method.running)
        method.training_step(batch, epoch)
        scores = method.last_scores
        seen.append(method.last_coefficients)
        assert method.last_coefficients == agm_coefficients(scores, before, 1.0, 10.0)[2]
        history.append(scores)
        assert method.running == pytest.approx(
            {m: sum(h[m] for h in history) / len(history) for m in scores})
        if epoch == 0:
            assert method.scale == {"audio": 1.0, "visual": 1.0}  # before the window
    assert method.iterations == 3
    assert method.scale == seen[1]  # after the window the last coefficients stay, as the code
    reset, _ = make_method("agm", modulation_starts=0, modulation_ends=0, after_window="reset")
    reset.training_step(batch, 0)
    assert reset.scale != {"audio": 1.0, "visual": 1.0}
    reset.training_step(batch, 1)
    assert reset.scale == {"audio": 1.0, "visual": 1.0}


def test_padded_forwards_leave_batchnorm_statistics_alone():
    method, bundle = make_method("agm")
    batch = first_batch(bundle)
    buffers = {k: v.clone() for k, v in method.model.named_buffers()}
    with torch.no_grad():
        emb = method.encode(method.model["encoders"], batch.inputs, method.modalities)
        full, _ = method.model["head"](emb)
    after_train_forward = {k: v.clone() for k, v in method.model.named_buffers()}
    with torch.no_grad():
        method.subset_values(batch.inputs, full)
    assert method.model.training
    for k, v in method.model.named_buffers():
        assert torch.equal(v, after_train_forward[k]), k
    assert any(not torch.equal(buffers[k], after_train_forward[k]) for k in buffers)


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_shared_subset_values_equal_one_padded_forward_per_subset(dataset):
    method, bundle = make_method("agm", dataset=dataset)
    batch = first_batch(bundle)
    model, mods = method.model, method.modalities
    with torch.no_grad():
        full = model["head"](method.encode(model["encoders"], batch.inputs, mods))[0]
        got = method.subset_values(batch.inputs, full)
        model.eval()
        for s in proper_subsets(mods):
            padded = {m: x if m in s else torch.zeros_like(x) for m, x in batch.inputs.items()}
            expected = model["head"](method.encode(model["encoders"], padded, mods))[0]
            torch.testing.assert_close(got[s], expected, msg=str(sorted(s)))
    assert len(got) == 2 ** len(mods) - 1


def test_three_modalities_run_with_seven_subset_forwards():
    method, bundle = make_method("agm", dataset="synthetic-avt")
    assert method.max_gap == 7.0 and len(proper_subsets(method.modalities)) + 1 == 7
    out = method.training_step(first_batch(bundle), epoch=0)
    assert torch.isfinite(out.loss) and set(method.scale) == {"audio", "text", "visual"}


def test_one_modality_is_unsupported():
    from amst_bench.errors import UnsupportedDataset

    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("agm").check_supported(None, ("audio",))


PROTOCOL = small_protocol(epochs=2, synthetic_samples=120)  # a short run: resuming is what is tested


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = run_spec("agm", protocol=PROTOCOL)
    bundle = load_bundle(protocol=PROTOCOL)
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=0)
    assert comparable(resumed) == comparable(whole)
