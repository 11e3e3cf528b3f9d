"""LFM: the code's alignment on hand-built logits, the fitted weights, the loss of a step, the
learnable weights' hypergradient against finite differences, three modalities, resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.lfm import alignment, fitted_weights, lfm_losses
from tests.helpers import (
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    small_protocol,
    whole_and_resumed,
)


def _kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * (a / b).log()).sum()


def test_alignment_is_the_codes_kl_from_the_midpoint():
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.1, 0.3, 0.6])
    m = (p + q) / 2
    got = alignment(p.log()[None], q.log()[None])
    torch.testing.assert_close(got, 0.5 * (_kl(m, p) + _kl(m, q)))
    assert abs(float(got) - float(0.5 * (_kl(p, m) + _kl(q, m)))) > 1e-3  # not the textbook JS


def test_fitted_weights_are_the_codes_polynomial():
    cls, align = fitted_weights(0)
    assert cls == pytest.approx(0.204623704) and align == pytest.approx(1 - 0.204623704)
    assert fitted_weights(50)[0] == pytest.approx(0.43668, abs=1e-5)
    assert fitted_weights(199)[0] == pytest.approx(0.91599, abs=1e-5)


def test_step_loss_is_twice_the_weighted_sum_with_the_epochs_weights():
    method, bundle = make_method("lfm")
    batch = first_batch(bundle)
    method.on_train_epoch_start(10)
    cls, align = fitted_weights(10)
    with torch.no_grad():
        _, parts = method.parts(batch.inputs)
        ce, al = lfm_losses(parts, batch.labels)
        torch.testing.assert_close(ce, F.cross_entropy((parts["audio"] + parts["visual"]) / 2, batch.labels))
        torch.testing.assert_close(al, alignment(parts["audio"], parts["visual"]))
    out = method.training_step(batch, epoch=10)
    assert float(out.loss) == pytest.approx(float(2 * (cls * ce + align * al)), rel=1e-5)
    assert method.alpha_history == [{"epoch": 10, "cls": cls, "align": align}]


def test_learnable_hypergradient_is_the_first_parameters_mean_hessian_vector_product():
    method, bundle = make_method("lfm", schedule="learnable", lr_alpha=0.5, seed=3)
    method.model.double()
    batch = first_batch(bundle, 8)
    batch = type(batch)({m: x.double() if x.is_floating_point() else x for m, x in batch.inputs.items()},
                        batch.labels)
    params = list(method.model.parameters())
    method.model.eval()  # epoch 1: eval mode, as the code

    def grads(loss_of):
        return torch.autograd.grad(loss_of(), params)

    def losses():
        return lfm_losses(method.parts(batch.inputs)[1], batch.labels)

    v = grads(lambda: losses()[0])  # ∇ CE
    eps = 1e-5
    first = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.add_(sign * eps * d)
        first.append(grads(lambda: 0.05 * losses()[0] + 0.95 * losses()[1])[0])
        with torch.no_grad():
            for p, d in zip(params, v, strict=True):
                p.sub_(sign * eps * d)
    expected = float(((first[0] - first[1]) / (2 * eps)).mean())
    method.model.train()
    method.learnable_update(1, batch)
    assert method.last_alpha_grad == pytest.approx(expected, rel=1e-4, abs=1e-9)
    assert method.alpha[1] == pytest.approx(min(0.95, max(0.05, 0.95 - 0.5 * expected)))
    assert method.alpha[0] == pytest.approx(1 - method.alpha[1])
    method.learnable_update(20, batch)  # lr_alpha halves at epochs 20, 40, …
    assert method.lr_alpha == 0.25 and method.model.training


def test_three_modalities_average_three_pairs():
    method, bundle = make_method("lfm", dataset="synthetic-avt")
    batch = first_batch(bundle)
    with torch.no_grad():
        _, parts = method.parts(batch.inputs)
        _, al = lfm_losses(parts, batch.labels)
    a, t, v = parts["audio"], parts["text"], parts["visual"]
    torch.testing.assert_close(al, (alignment(a, t) + alignment(a, v) + alignment(t, v)) / 3)
    method.on_train_epoch_start(0)
    assert torch.isfinite(method.training_step(batch, 0).loss)


def test_one_modality_is_unsupported():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("lfm").check_supported(None, ("audio",))


PROTOCOL = small_protocol(epochs=2, synthetic_samples=120)  # a short run: resuming is what is tested


def test_learnable_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = run_spec("lfm", {"schedule": "learnable", "lr_alpha": "10"}, protocol=PROTOCOL)
    bundle = load_bundle(protocol=PROTOCOL)
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=0)
    history = whole["method_resolved"]["alpha_history"]
    assert [h["epoch"] for h in history] == [0, 1]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
