"""MMCosine: logits = scaling × cosine on hand-built tensors, the training loss and untouched bias,
prediction rules and presets, three modalities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.mmcosine import cosine_logits
from tests.helpers import first_batch, make_method


def test_logits_are_scale_times_cosine_on_hand_built_tensors():
    e = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-1.0, -1.0]])  # 3 classes
    z = cosine_logits(e, w, 10.0)
    expected = 10.0 * torch.tensor([[0.6, 0.8, -1.4 / 2**0.5], [0.0, 1.0, -1 / 2**0.5]])
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(cosine_logits(7 * e, 0.1 * w, 10.0), z)  # norm-free: the core rule


def test_training_loss_is_ce_of_summed_scaled_cosines_and_the_bias_is_not_trained():
    method, bundle = make_method("mmcosine", scaling=15)
    batch = first_batch(bundle)
    head = method.model["head"]
    with torch.no_grad():
        head.bias.fill_(3.0)  # would change a linear head's logits, not the cosine ones
        emb = {m: method.model["encoders"][m](batch.inputs[m]) for m in method.modalities}
    method.model.train()
    blocks = {m: head.blocks[m].weight.detach().clone() for m in method.modalities}
    expected = sum(15 * F.normalize(emb[m], dim=1) @ F.normalize(blocks[m], dim=1).T for m in emb)
    out = method.training_step(batch, epoch=0)
    assert float(out.loss) == pytest.approx(float(F.cross_entropy(expected, batch.labels)), rel=1e-5)
    assert head.bias.grad is None and torch.equal(head.bias.detach(), torch.full_like(head.bias, 3.0))


def test_prediction_cosine_by_default_linear_in_the_original_preset():
    method, bundle = make_method("mmcosine")
    inputs = first_batch(bundle).inputs
    method.model.eval()
    with torch.no_grad():
        pred = method.predict(inputs)
        emb = {m: method.model["encoders"][m](inputs[m]) for m in method.modalities}
        cos = {m: cosine_logits(emb[m], method.model["head"].blocks[m].weight, 10.0) for m in emb}
    torch.testing.assert_close(pred.logits, cos["audio"] + cos["visual"])
    torch.testing.assert_close(pred.modality_logits["visual"], cos["visual"])
    original, _ = make_method("mmcosine", preset="original")
    original.model.eval()
    with torch.no_grad():
        linear = original.predict(inputs)
        head_logits, _ = original.model["head"](original.encode(original.model["encoders"], inputs,
                                                                original.modalities))
    torch.testing.assert_close(linear.logits, head_logits)
    assert original.resolved_options()["predict"] == "linear"
    assert {s.step_size for s in original.schedulers.values()} == {100}
    assert {s.step_size for s in method.schedulers.values()} == {method.ctx.protocol.optimizer.lr_step}


def test_three_modalities_sum_three_cosines():
    method, bundle = make_method("mmcosine", dataset="synthetic-avt")
    inputs = first_batch(bundle).inputs
    method.model.eval()
    with torch.no_grad():
        pred = method.predict(inputs)
    assert set(pred.modality_logits) == {"audio", "text", "visual"}
    torch.testing.assert_close(pred.logits, sum(pred.modality_logits.values()))
    assert pred.logits.abs().max() <= 3 * 10.0 + 1e-4  # each part is bounded by the scale
    assert torch.isfinite(method.training_step(first_batch(bundle), 0).loss)


def test_one_modality_is_unsupported():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("mmcosine").check_supported(None, ("audio",))
