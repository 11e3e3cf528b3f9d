"""AMCo: the mask schedule, the dependent-modality rule on hand-built logits, masking in a step."""

from __future__ import annotations

import pytest
import torch

from amst_bench.errors import UserError
from amst_bench.methods.amco import class_mask, dependent_modalities, masked_count
from tests.helpers import first_batch, make_method


def test_mask_grows_as_a_sine_of_l_t_to_every_class():
    assert masked_count(0.0, 0.3, 6) == 0
    assert masked_count(0.15, 0.3, 6) == 4  # int(sin(π/4) · 6) = int(4.24)
    assert masked_count(0.3, 0.3, 6) == masked_count(7.0, 0.3, 6) == 6
    torch.manual_seed(0)
    mask = class_mask(0.15, 0.3, 6)
    assert mask.shape == (1, 6) and int((mask == 0).sum()) == 4 and int((mask == 1).sum()) == 2


def test_dependent_modality_holds_more_than_sigma_of_the_joint_softmax():
    parts = {"audio": torch.tensor([[5.0, 0.0], [3.0, 0.0]]), "visual": torch.zeros(2, 2)}
    assert dependent_modalities(parts, 0.5) == {"audio": True, "visual": False}
    assert dependent_modalities(parts, 0.99) == {"audio": False, "visual": False}
    even = {"audio": torch.zeros(2, 2), "visual": torch.zeros(2, 2)}
    assert dependent_modalities(even, 0.5) == {"audio": False, "visual": False}  # 0.5 is not > 0.5


def _encoder_grads(method, batch, epoch):
    def backward_only(optimizers, loss, before_step=None):
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()

    method.step = backward_only
    method.training_step(batch, epoch)
    grads = {}
    for m, enc in method.model["encoders"].items():
        flat = [p.grad.flatten() for p in enc.parameters() if p.grad is not None]
        grads[m] = torch.cat(flat) if flat else torch.zeros(1)
    return grads


def test_a_fully_masked_dependent_modality_gets_no_gradient():
    method, bundle = make_method("amco")
    batch = first_batch(bundle, 40)
    method.dependent = {"audio": True, "visual": False}
    method.l_t = 1.0  # >= eps: every class masked
    grads = _encoder_grads(method, batch, epoch=1)
    assert float(grads["audio"].abs().sum()) == 0.0 and float(grads["visual"].abs().sum()) > 0
    assert method.l_t == pytest.approx(1.1)  # += epoch / 10
    # the dependent set was recomputed from this batch: masked audio holds little mass now
    assert method.dependent["audio"] is False
    # epoch 0: l_t stays 0, nothing is masked, audio learns
    method.on_train_epoch_start(0)
    method.dependent = {"audio": True, "visual": False}
    grads = _encoder_grads(method, batch, epoch=0)
    assert float(grads["audio"].abs().sum()) > 0 and method.l_t == 0.0


def test_outside_the_window_no_mask_and_no_unimodal_loss():
    method, bundle = make_method("amco", modulation_ends=2)
    batch = first_batch(bundle, 40)
    method.dependent = {"audio": True, "visual": False}
    method.l_t = 1.0
    grads = _encoder_grads(method, batch, epoch=3)
    assert float(grads["audio"].abs().sum()) > 0
    assert method.dependent == {"audio": True, "visual": False}  # not recomputed outside


def test_prediction_is_linear_star_of_the_summed_parts_and_subsets_leave_modalities_out():
    method, bundle = make_method("amco", dataset="synthetic-avt")
    method.model.eval()
    with torch.no_grad():
        pred = method.predict(first_batch(bundle).inputs)
        parts = pred.modality_logits
        torch.testing.assert_close(pred.logits, method.model["star"](sum(parts.values())))
        torch.testing.assert_close(method.subset_logits(pred, frozenset({"audio", "text"})),
                                   method.model["star"](parts["audio"] + parts["text"]))
    method.model.train()
    assert torch.isfinite(method.training_step(first_batch(bundle, 40), 1).loss)


def test_bad_window_is_one_line():
    with pytest.raises(UserError, match=r"amco.modulation_ends \(0\) is before amco.modulation_starts \(1\)"):
        make_method("amco", modulation_starts=1, modulation_ends=0)
