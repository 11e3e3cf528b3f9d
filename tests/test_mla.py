"""MLA: one alternating step per modality through a shared head, the optional head-gradient
projection, and the test-time fusions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import amst_bench.methods.mla  # noqa: F401
from amst_bench import registry
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.methods.mla import MLA, entropy_weights
from amst_bench.options import build_config
from amst_bench.report.results import ResultStore
from amst_bench.train.method import Method
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer
from tests.helpers import first_batch, load_bundle, make_method, small_protocol, snapshot

PROJECTION = [{}, {"head_projection": "true"}]


def _record_head_steps(method):
    """Wrap the head optimiser's step: per call, which encoders hold a gradient, the head's weight
    gradient as applied, and whether the head's parameters changed."""
    head, encoders = method.model["head"], method.model["encoders"]
    opt = method.optimizers["head"]
    records = []
    original = opt.step

    def step(*args, **kwargs):
        before = snapshot(head)
        grads = {m: any(p.grad is not None for p in enc.parameters()) for m, enc in encoders.items()}
        weight_grad = head.fc.weight.grad.clone()
        out = original(*args, **kwargs)
        moved = all(not torch.equal(before[f"param:{n}"], p) for n, p in head.named_parameters())
        records.append({"encoder_grads": grads, "weight_grad": weight_grad, "head_moved": moved})
        return out

    opt.step = step
    return records


def _count_steps(method):
    counts = dict.fromkeys(method.optimizers, 0)
    for key, opt in method.optimizers.items():
        original = opt.step

        def step(*args, _key=key, _original=original, **kwargs):
            counts[_key] += 1
            return _original(*args, **kwargs)

        opt.step = step
    return counts


# ---------------------------------------------------------------------- the alternating update


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
@pytest.mark.parametrize("options", PROJECTION)
def test_one_step_per_modality_reaching_only_its_encoder_and_always_the_head(dataset, options):
    method, bundle = make_method("mla", dataset=dataset, **options)
    counts = _count_steps(method)
    records = _record_head_steps(method)
    method.training_step(first_batch(bundle), epoch=0)
    order = sorted(method.modalities)
    assert counts == {"encoders": len(order), "head": len(order)}
    assert [r["encoder_grads"] for r in records] == [{m: m == cur for m in order} for cur in order]
    assert all(r["head_moved"] for r in records)


def test_default_step_goes_through_method_step_once_per_modality(monkeypatch):
    method, bundle = make_method("mla", dataset="synthetic-avt")
    losses = []
    original = Method.step

    def spy(optimizers, loss):
        losses.append(loss)
        original(optimizers, loss)

    monkeypatch.setattr(Method, "step", staticmethod(spy))
    method.training_step(first_batch(bundle), epoch=0)
    assert len(losses) == 3


def test_default_step_equals_a_hand_written_alternating_loop():
    """The AMST code's `alter_train`, written out: per sorted modality, fc(e_m), CE, zero_grad both,
    backward, step both, on embeddings computed once per batch."""
    method, bundle = make_method("mla", seed=3)
    reference, _ = make_method("mla", seed=3)
    batch = first_batch(bundle)
    method.training_step(batch, epoch=0)

    enc, head = reference.model["encoders"], reference.model["head"]
    opts = [reference.optimizers["encoders"], reference.optimizers["head"]]
    emb = {m: enc[m](batch.inputs[m]) for m in sorted(enc)}
    for m in sorted(emb):
        loss = F.cross_entropy(head.fc(emb[m]), batch.labels)
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
    for (name, p), q in zip(method.model.named_parameters(), reference.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=name)


# ---------------------------------------------------------------------- head-gradient projection


def test_projection_is_off_by_default_and_the_gradient_is_the_plain_one(monkeypatch):
    assert MLA.Config().head_projection is False
    method, bundle = make_method("mla")
    assert method.projection is None
    weight = method.model["head"].fc.weight
    checked = []
    original = Method.step

    def spy(optimizers, loss):
        (raw,) = torch.autograd.grad(loss, weight, retain_graph=True)
        original(optimizers, loss)
        torch.testing.assert_close(weight.grad, raw)
        checked.append(1)

    monkeypatch.setattr(Method, "step", staticmethod(spy))
    method.training_step(first_batch(bundle), epoch=0)
    assert len(checked) == 2


def test_projection_matches_hand_computed_case():
    method, _ = make_method("mla", head_projection="true")
    d = method.ctx.embedding_dim
    head = method.model["head"].fc
    torch.manual_seed(0)
    grad_w, grad_b = torch.randn_like(head.weight), torch.randn_like(head.bias)
    head.weight.grad, head.bias.grad = grad_w.clone(), grad_b.clone()
    emb = torch.randn(8, d)
    r = emb.mean(0)

    method.projection_steps = 1  # not the run's first update
    method._batch_index = 0  # alpha = 0.1 ** (0 / N + 1)
    method.project_head_gradient(emb)

    alpha = 0.1
    p = torch.eye(d) - torch.outer(r, r) / (alpha + r @ r)  # P = I: k = r
    p = p / p.norm()
    torch.testing.assert_close(method.projection, p)
    torch.testing.assert_close(head.weight.grad, grad_w @ p.T)
    torch.testing.assert_close(head.bias.grad, grad_b)  # bias untouched
    # geometry: directions orthogonal to r keep gradient/||P||, r itself is damped by a/(a+|r|^2)
    norm = (torch.eye(d) - torch.outer(r, r) / (alpha + r @ r)).norm()
    v = torch.randn(d)
    v = v - (v @ r) / (r @ r) * r
    torch.testing.assert_close(head.weight.grad @ v, grad_w @ v / norm)
    torch.testing.assert_close(head.weight.grad @ r, grad_w @ r * alpha / (alpha + r @ r) / norm)
    assert method.projection_steps == 2


def test_projection_in_training_skips_the_first_update_then_projects():
    plain, bundle = make_method("mla", seed=1)
    projected, _ = make_method("mla", seed=1, head_projection="true")
    plain_steps, projected_steps = _record_head_steps(plain), _record_head_steps(projected)
    batch = first_batch(bundle)
    out = projected.training_step(batch, epoch=0)
    plain.training_step(batch, epoch=0)

    # first head update of the run (audio): left alone, so both models are equal afterwards
    torch.testing.assert_close(projected_steps[0]["weight_grad"], plain_steps[0]["weight_grad"])
    # second (visual): P updated with the visual batch mean, alpha = 0.1 (batch 0), then projected
    r = out.embeddings["visual"].detach().mean(0)
    d = r.numel()
    p = torch.eye(d) - torch.outer(r, r) / (0.1 + r @ r)
    p = p / p.norm()
    torch.testing.assert_close(projected.projection, p)
    raw = plain_steps[1]["weight_grad"]
    torch.testing.assert_close(projected_steps[1]["weight_grad"], raw @ p.T)
    assert not torch.allclose(projected_steps[1]["weight_grad"], raw)
    assert projected.projection_steps == 2


def test_projection_state_survives_a_checkpoint():
    method, bundle = make_method("mla", head_projection="true")
    method.training_step(first_batch(bundle), epoch=0)
    state = method.extra_state()
    other, _ = make_method("mla", head_projection="true")
    other.load_extra_state(state)
    torch.testing.assert_close(other.projection, method.projection)
    assert other.projection_steps == method.projection_steps == 2


# ---------------------------------------------------------------------- fusion


def _entropy(row):
    p = [math.exp(x) for x in row]
    s = sum(p)
    return -sum(q / s * math.log(q / s) for q in p)


def test_entropy_weights_follow_the_formula_and_favour_the_confident_modality():
    a = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 0.5]])
    b = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.2, 0.1, 0.3]])
    w = entropy_weights({"audio": a, "visual": b})
    assert w["audio"].shape == (3, 1)
    assert w["audio"][0] > w["visual"][0] and w["visual"][1] > w["audio"][1]
    for i in range(3):
        ha, hb = _entropy(a[i].tolist()), _entropy(b[i].tolist())
        top = max(ha, hb)
        wa, wb = math.exp(top - ha), math.exp(top - hb)
        assert w["audio"][i].item() == pytest.approx(wa / (wa + wb), rel=1e-5)
        assert w["visual"][i].item() == pytest.approx(wb / (wa + wb), rel=1e-5)


def test_entropy_weights_three_modalities_sum_to_one_and_rank_by_entropy():
    z = {"audio": torch.tensor([[3.0, 0, 0]]), "text": torch.tensor([[1.0, 0, 0]]),
         "visual": torch.zeros(1, 3)}
    w = entropy_weights(z)
    assert sum(v.item() for v in w.values()) == pytest.approx(1.0)
    assert w["audio"].item() > w["text"].item() > w["visual"].item()
    saturated = entropy_weights({"a": torch.tensor([[1e4, 0.0]]), "b": torch.zeros(1, 2)})
    assert not torch.isnan(saturated["a"]).any()  # log_softmax: no 0 * log(0)


@pytest.mark.parametrize("dataset", ["synthetic", "synthetic-avt"])
def test_predict_fusions(dataset):
    even, bundle = make_method("mla", dataset=dataset)
    inputs = first_batch(bundle).inputs
    even.model.eval()
    with torch.no_grad():
        pred = even.predict(inputs)
        emb = {m: even.model["encoders"][m](inputs[m]) for m in even.modalities}
        for m in even.modalities:  # modality logits = the shared head on that modality
            torch.testing.assert_close(pred.modality_logits[m], even.model["head"].fc(emb[m]))
        torch.testing.assert_close(pred.logits, torch.stack(list(pred.modality_logits.values())).mean(0))

        ent, _ = make_method("mla", dataset=dataset, fusion="entropy")
        ent.model.load_state_dict(even.model.state_dict())
        ent.model.eval()
        pred_e = ent.predict(inputs)
        w = entropy_weights(pred_e.modality_logits)
        expected = sum(w[m] * z for m, z in pred_e.modality_logits.items())
        torch.testing.assert_close(pred_e.logits, expected)
        assert not torch.allclose(pred_e.logits, pred.logits)

        weights = {m: 0.1 * (i + 1) for i, m in enumerate(even.modalities)}
        fixed, _ = make_method("mla", dataset=dataset, fusion="weighted",
                               **{f"fusion_weights.{m}": v for m, v in weights.items()})
        fixed.model.load_state_dict(even.model.state_dict())
        fixed.model.eval()
        pred_w = fixed.predict(inputs)
        expected = sum(weights[m] * z for m, z in pred_w.modality_logits.items())
        torch.testing.assert_close(pred_w.logits, expected)


def test_bad_options_and_data_raise():
    with pytest.raises(UserError, match="needs a weight"):
        make_method("mla", fusion="weighted", **{"fusion_weights.audio": 1})
    with pytest.raises(UserError, match="only applies"):
        make_method("mla", **{"fusion_weights.audio": 1})
    with pytest.raises(UserError):
        build_config(MLA, {"fusion": "max"})
    method, _ = make_method("mla")
    with pytest.raises(UnsupportedDataset):
        method.check_supported(("audio",))


# ---------------------------------------------------------------------- end to end


@pytest.mark.parametrize("dataset, options", [
    ("synthetic", {}),
    ("synthetic-avt", {"fusion": "entropy", "head_projection": "true"}),
])
def test_two_epoch_trainer_run(tmp_path, dataset, options):
    cls = registry.methods.get("mla")
    protocol = small_protocol(epochs=2, synthetic_samples=160)
    bundle = load_bundle(dataset, protocol)
    spec = RunSpec(cls, build_config(cls, options), dataset, 0, protocol)
    result = Trainer(spec, bundle, ResultStore(tmp_path)).run()
    modalities = sorted(bundle.modalities)
    assert len(result["curves"]["val_acc"]) == 2
    assert set(result["test"]["modality_accuracy"]) == set(modalities)
    assert result["method_resolved"]["update_order"] == modalities
    assert all(math.isfinite(x) for x in result["curves"]["train_loss"])
