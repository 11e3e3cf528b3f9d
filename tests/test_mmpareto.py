"""MMPareto: the weights in the conflict and agreement cases on hand-built gradients, the magnitude
rule, the wiring of one training step, three modalities, the original preset, resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.mmpareto import integrate, min_norm_weight, pareto_weights
from tests.helpers import (
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    whole_and_resumed,
)


def test_conflict_takes_the_min_norm_point():
    g_mm, g_m = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # cosine -0.71
    k_mm, k_m, cos = pareto_weights(g_mm, g_m)
    assert cos < 0
    # min_c ||c g_mm + (1-c) g_m||^2 = (2c - 1)^2 + (1 - c)^2 → c = 3/5, by hand
    assert (k_mm, k_m) == pytest.approx((0.6, 0.4))
    grid = torch.linspace(0, 1, 10001)[:, None]
    norms = (grid * g_mm + (1 - grid) * g_m).norm(dim=1)
    assert k_mm == pytest.approx(float(grid[norms.argmin()]), abs=1e-3)


def test_conflict_gradient_is_pareto_direction_rescaled_never_zero():
    """The bug BalanceBenchmark has (weights left at 0 in the conflict case) would give zeros."""
    g_mm, g_m = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    (got,) = integrate([g_mm], [g_m], 0.6, 0.4, gamma=1.5)
    new = torch.tensor([0.4, 0.8])  # 2·0.6·g_mm + 2·0.4·g_m
    expected = 1.5 * new * (torch.tensor([0.0, 1.0]).norm() / new.norm())  # up to ||g_mm + g_m|| = 1
    torch.testing.assert_close(got, expected)
    assert got @ g_mm > 0 and got @ g_m > 0  # a direction common to both objectives


def test_agreement_sums_equally_times_gamma():
    g_mm, g_m = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    k_mm, k_m, cos = pareto_weights(g_mm, g_m)
    assert cos > 0 and (k_mm, k_m) == (0.5, 0.5)
    (got,) = integrate([g_mm], [g_m], k_mm, k_m, gamma=1.5)
    torch.testing.assert_close(got, 1.5 * (g_mm + g_m))


def test_zero_cosine_counts_as_conflict_and_solver_ends():
    k_mm, _, cos = pareto_weights(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert cos == 0 and k_mm == pytest.approx(0.8)  # (4 - 0) / (1 + 4): not the 0.5 of agreement
    assert min_norm_weight(1.0, 2.0, 5.0) == 0.999  # <g1,g2> >= ||g1||²
    assert min_norm_weight(5.0, 2.0, 1.0) == 0.001  # <g1,g2> >= ||g2||²


def test_magnitude_is_per_tensor_and_never_scaled_down():
    a_mm, a_m = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])  # sum is 0: keep `new` as is
    b_mm, b_m = torch.tensor([0.0, 3.0]), torch.tensor([0.0, 3.0])
    got_a, got_b = integrate([a_mm, b_mm], [a_m, b_m], 0.6, 0.4, gamma=2.0)
    torch.testing.assert_close(got_a, 2.0 * (1.2 * a_mm + 0.8 * a_m))
    torch.testing.assert_close(got_b, 2.0 * (b_mm + b_m))  # new = 6 = ||sum||: ratio 1
    (zero,) = integrate([torch.zeros(3)], [torch.zeros(3)], 0.999, 0.001, gamma=1.5)
    assert torch.equal(zero, torch.zeros(3))


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_one_step_sets_integrated_encoder_and_plain_head_gradients(dataset, monkeypatch):
    method, bundle = make_method("mmpareto", dataset=dataset)
    batch = first_batch(bundle)
    model = method.model
    for o in method.optimizers.values():
        monkeypatch.setattr(o, "step", lambda *a, **k: None)  # keep the gradients the step would use
    emb = {m: model["encoders"][m](batch.inputs[m]) for m in method.modalities}
    fused, _ = model["head"](emb)
    loss_mm = F.cross_entropy(fused, batch.labels)
    expected = {}
    for m in method.modalities:
        params = list(model["encoders"][m].parameters())
        loss_m = F.cross_entropy(model["unimodal"][m](emb[m]), batch.labels)
        g_mm = torch.autograd.grad(loss_mm, params, retain_graph=True)
        g_m = torch.autograd.grad(loss_m, params, retain_graph=True)
        k = pareto_weights(torch.cat([g.flatten() for g in g_mm]), torch.cat([g.flatten() for g in g_m]))
        expected[m] = integrate(list(g_mm), list(g_m), k[0], k[1], 1.5)
        for p, g in zip(model["unimodal"][m].parameters(),
                        torch.autograd.grad(loss_m, list(model["unimodal"][m].parameters())), strict=True):
            expected[p] = g
    head_grads = torch.autograd.grad(loss_mm, list(model["head"].parameters()))
    method.training_step(batch, epoch=0)
    for m in method.modalities:
        for p, g in zip(model["encoders"][m].parameters(), expected[m], strict=True):
            torch.testing.assert_close(p.grad, g)
        for p in model["unimodal"][m].parameters():
            torch.testing.assert_close(p.grad, expected[p])
    for p, g in zip(model["head"].parameters(), head_grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_needs_two_modalities_and_original_preset_schedule():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("mmpareto").check_supported(None, ("audio",))
    method, _ = make_method("mmpareto", preset="original")
    for key, opt in method.optimizers.items():
        assert opt.param_groups[0]["lr"] == 0.002 and method.schedulers[key].step_size == 30
    assert method.resolved_options()["lr_step"] == 30
    default, _ = make_method("mmpareto")
    assert default.optimizers["encoders"].param_groups[0]["lr"] == 1e-3
    assert default.schedulers["encoders"].step_size == 70


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = run_spec("mmpareto", epochs=2)
    bundle = load_bundle()
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=0)
    assert [h["epoch"] for h in whole["method_resolved"]["history"]] == [0, 1]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
