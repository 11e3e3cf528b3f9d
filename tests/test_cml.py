"""CML: the confidence rank loss on hand-built logits (both forms, trick 1), the removal chain and
the loss of a step, the window, three modalities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.cml import confidence_rank_loss
from tests.helpers import first_batch, make_method


def _two_class(p: float) -> list[float]:
    """Logits whose softmax is (p, 1 − p)."""
    return [math.log(p), math.log(1 - p)]


def test_rank_loss_penalises_confidence_that_rises_without_a_modality():
    labels = torch.tensor([0, 0, 1])
    more = torch.tensor([_two_class(0.6), _two_class(0.9), _two_class(0.7)])
    fewer = torch.tensor([_two_class(0.8), _two_class(0.7), _two_class(0.6)])
    # sample 0: confidence 0.6 → 0.8 (rises: 0.2); sample 1: falls (0); sample 2: the full model
    # predicts 0 (wrong), the reduced one too, confidence 0.7 → 0.6 (falls: 0)
    assert float(confidence_rank_loss(more, fewer, labels)) == pytest.approx(0.2, abs=1e-6)
    # BalanceBenchmark: ReLU of the batch sum, 0.2 − 0.2 − 0.1 < 0
    assert float(confidence_rank_loss(more, fewer, labels, "balancebenchmark")) == 0.0


def test_rank_loss_trick_one_spares_a_sample_the_removal_made_right():
    labels = torch.tensor([1])
    more = torch.tensor([_two_class(0.6)])   # predicts 0: wrong, confidence 0.6
    fewer = torch.tensor([_two_class(0.1)])  # predicts 1: right, confidence 0.9
    assert float(confidence_rank_loss(more, fewer, labels)) == 0.0
    assert float(confidence_rank_loss(more, fewer, labels, "balancebenchmark")) == pytest.approx(0.3)


def test_step_loss_is_the_averaged_ce_chain_plus_lambda_rank():
    method, bundle = make_method("cml", lam=2.0, seed=4)
    batch = first_batch(bundle)
    method.order = ["visual", "audio"]  # audio is removed
    head = method.model["head"]
    with torch.no_grad():
        emb = {m: method.model["encoders"][m](batch.inputs[m]) for m in method.modalities}
        z, _ = head(emb)
        without_audio = head.blocks["visual"](emb["visual"]) + head.bias  # block gone, full bias kept
        expected = (F.cross_entropy(z, batch.labels) + F.cross_entropy(without_audio, batch.labels)) / 2 \
            + 2.0 * confidence_rank_loss(z, without_audio, batch.labels)
    out = method.training_step(batch, epoch=0)
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-5)


def test_outside_the_window_plain_cross_entropy():
    method, bundle = make_method("cml", modulation_ends=3)
    batch = first_batch(bundle)
    with torch.no_grad():
        z, _ = method.model["head"](method.encode(method.model["encoders"], batch.inputs, method.modalities))
    out = method.training_step(batch, epoch=4)
    assert float(out.loss) == pytest.approx(float(F.cross_entropy(z, batch.labels)), rel=1e-5)


def test_three_modalities_remove_two_in_the_epochs_order():
    method, bundle = make_method("cml", dataset="synthetic-avt", lam=0)
    batch = first_batch(bundle)
    torch.manual_seed(0)
    method.on_train_epoch_start(0)
    assert sorted(method.order) == ["audio", "text", "visual"]
    head = method.model["head"]
    with torch.no_grad():
        emb = {m: method.model["encoders"][m](batch.inputs[m]) for m in method.modalities}
        z, _ = head(emb)
        first = method.order[0]
        two_left = sum(head.blocks[m](emb[m]) for m in method.order[:2]) + head.bias
        one_left = head.blocks[first](emb[first]) + head.bias
        expected = sum(F.cross_entropy(x, batch.labels) for x in (z, two_left, one_left)) / 3
    assert float(method.training_step(batch, 0).loss) == pytest.approx(float(expected), rel=1e-5)


def test_one_modality_is_unsupported():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("cml").check_supported(None, ("audio",))
