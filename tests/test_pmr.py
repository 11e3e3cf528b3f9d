"""PMR: prototypes, prototype logits, the switch onto the weaker modality, the cut-off, presets."""

from __future__ import annotations

import io

import pytest
import torch

from amst_bench import registry
from amst_bench.data.tensors import iterate_batches, num_batches
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.methods.pmr import prototype_batch_count, prototype_logits
from amst_bench.options import build_config
from amst_bench.train.method import MethodContext
from amst_bench.train.trainer import encoder_factory
from tests.helpers import (
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    small_protocol,
    snapshot,
    whole_and_resumed,
)


def _on(dataset_name: str, **options):
    """PMR on synthetic data that calls itself `dataset_name` (for per-dataset defaults)."""
    protocol = small_protocol()
    bundle = load_bundle("synthetic", protocol)
    bundle.name = dataset_name
    cls = registry.methods.get("pmr")
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol),
                        train=bundle.train)
    torch.manual_seed(0)
    return cls(build_config(cls, {k: str(v) for k, v in options.items()}), ctx), bundle


def _eval_class_means(method, batches):
    enc = method.model["encoders"]
    enc.eval()
    with torch.no_grad():
        embs = {m: torch.cat([enc[m](b.inputs[m]) for b in batches]) for m in method.modalities}
    enc.train()
    labels = torch.cat([b.labels for b in batches])
    return {m: torch.stack([e[labels == c].mean(0) for c in range(method.ctx.num_classes)])
            for m, e in embs.items()}


def _batches(bundle, n=3, size=40):
    batches = list(iterate_batches(bundle.train, size))[:n]
    labels = torch.cat([b.labels for b in batches])
    assert set(labels.tolist()) == set(range(bundle.num_classes))  # every class present
    return batches


# ---------------------------------------------------------------------- prototypes


def test_prototypes_are_eval_mode_class_means_with_momentum_zero():
    method, bundle = make_method("pmr", momentum=0)
    batches = _batches(bundle)
    method.prototypes = {m: torch.randn(6, method.ctx.embedding_dim) for m in method.modalities}
    buffers = {k: v for k, v in snapshot(method.model).items() if k.startswith("buffer:")}
    method.update_prototypes(batches, epoch=5)
    expected = _eval_class_means(method, batches)
    for m in method.modalities:
        torch.testing.assert_close(method.prototypes[m], expected[m])
    # eval mode: BatchNorm statistics untouched; the model is handed back in train mode
    after = snapshot(method.model)
    assert all(torch.equal(v, after[k]) for k, v in buffers.items())
    assert method.model.training


def test_momentum_blends_old_and_new_as_the_code():
    method, bundle = make_method("pmr")  # amst: momentum_coef 0.2 = weight of the old prototypes
    assert method.momentum == 0.2
    batches = _batches(bundle)
    mean = _eval_class_means(method, batches)
    method.update_prototypes(batches, epoch=0)  # first update: nothing to blend with
    for m in method.modalities:
        torch.testing.assert_close(method.prototypes[m], mean[m])
    old = {m: torch.randn_like(p) for m, p in mean.items()}
    method.prototypes = dict(old)
    method.update_prototypes(batches, epoch=1)
    for m in method.modalities:
        torch.testing.assert_close(method.prototypes[m], 0.2 * old[m] + 0.8 * mean[m])


def test_original_preset_blends_from_epoch_2():
    """The original updates after each epoch and skips the blend after epoch 0 (`epoch <= 0`)."""
    method, bundle = make_method("pmr", preset="original", momentum=0.5)
    batches = _batches(bundle)
    mean = _eval_class_means(method, batches)
    old = {m: torch.randn_like(p) for m, p in mean.items()}
    method.prototypes = dict(old)
    method.update_prototypes(batches, epoch=1)
    for m in method.modalities:
        torch.testing.assert_close(method.prototypes[m], mean[m])
    method.prototypes = dict(old)
    method.update_prototypes(batches, epoch=2)
    for m in method.modalities:
        torch.testing.assert_close(method.prototypes[m], 0.5 * old[m] + 0.5 * mean[m])


def test_missing_class_keeps_its_previous_prototype():
    method, bundle = make_method("pmr", momentum=0)
    batch = first_batch(bundle, 40)
    keep = batch.labels != 0
    only = type(batch)({m: t[keep] for m, t in batch.inputs.items()}, batch.labels[keep])
    old = {m: torch.randn(6, method.ctx.embedding_dim) for m in method.modalities}
    method.prototypes = dict(old)
    method.update_prototypes([only], epoch=3)
    for m in method.modalities:
        assert torch.isfinite(method.prototypes[m]).all()
        torch.testing.assert_close(method.prototypes[m][0], old[m][0])


def test_batch_counts_follow_each_code():
    assert prototype_batch_count(94, 0.1, "ceil") == 10  # AMST: first k with k/n >= 0.1
    assert prototype_batch_count(94, 0.1, "floor") == 9  # original: all_num // 10
    assert prototype_batch_count(100, 0.1, "ceil") == prototype_batch_count(100, 0.1, "floor") == 10
    assert prototype_batch_count(4, 0.1, "ceil") == prototype_batch_count(4, 0.1, "floor") == 1
    assert prototype_batch_count(7, 1.0, "ceil") == prototype_batch_count(7, 1.0, "floor") == 7


def test_epoch_start_reads_a_seeded_tenth_of_training_batches():
    method, bundle = _on("synthetic")
    torch.manual_seed(3)
    bs = method.ctx.protocol.batch_size
    n = num_batches(bundle.train, bs)
    assert len(list(method.prototype_batches(0))) == prototype_batch_count(n, 0.1, "ceil")
    a = [b.labels for b in method.prototype_batches(4)]
    b = [b.labels for b in method.prototype_batches(4)]
    c = [b.labels for b in method.prototype_batches(5)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    method.on_train_epoch_start(0)
    assert method.model.training and set(method.prototypes) == {"audio", "visual"}


def test_ave_prototypes_come_from_the_whole_validation_split_as_both_codes():
    method, bundle = _on("ave")
    assert method.proto_data == "val" and method.proto_fraction == 1.0
    got = torch.cat([b.labels for b in method.prototype_batches(0)])
    assert torch.equal(got, bundle.val.labels)
    method, _ = _on("ave", proto_data="train")
    assert method.proto_data == "train" and method.proto_fraction == 0.1


# ---------------------------------------------------------------------- the loss


def test_prototype_logits_are_negative_euclidean_distance():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    p = torch.tensor([[0.0, 0.0], [3.0, 0.0], [6.0, 8.0]])
    expected = torch.tensor([[0.0, -3.0, -10.0], [-5.0, -4.0, -5.0]])
    torch.testing.assert_close(prototype_logits(e, p), expected)


def _grads(method, batch, epoch):
    """Encoder gradients of one training step, without the optimiser step."""
    def backward_only(optimizers, loss, before_step=None):
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()

    method.step = backward_only
    out = method.training_step(batch, epoch)
    grads = {m: torch.cat([p.grad.flatten() for p in enc.parameters()])
             for m, enc in method.model["encoders"].items()}
    return grads, out.loss


def _strong_weak_prototypes(method, batch, strong):
    """The strong modality's prototypes are its class means on this batch; the weak one's are the
    same means assigned to the wrong classes (rolled by one), so its prototype score is low."""
    with torch.no_grad():
        emb = {m: method.model["encoders"][m](batch.inputs[m]) for m in method.modalities}
    protos = {}
    for m, e in emb.items():
        means = torch.stack([e[batch.labels == c].mean(0) for c in range(method.ctx.num_classes)])
        protos[m] = means if m == strong else means.roll(1, dims=0)
    method.prototypes = protos


@pytest.mark.parametrize("strong,weak", [("audio", "visual"), ("visual", "audio")])
def test_extra_loss_goes_to_the_weaker_modality_only(strong, weak):
    method, bundle = make_method("pmr")
    batch = first_batch(bundle, 60)
    _strong_weak_prototypes(method, batch, strong)
    proto = {m: prototype_logits(method.model["encoders"][m](batch.inputs[m]), method.prototypes[m])
             for m in method.modalities}
    weights = method.prototype_weights(proto, batch.labels)
    assert (float(weights[weak]), float(weights[strong])) == (1.0, 0.0)

    with_term, loss_with = _grads(method, batch, epoch=0)
    method.alpha = 0.0
    without, loss_without = _grads(method, batch, epoch=0)
    assert torch.equal(with_term[strong], without[strong])
    assert not torch.allclose(with_term[weak], without[weak])
    assert loss_with > loss_without


def test_tie_adds_nothing():
    method, _ = make_method("pmr")
    logits = {m: torch.zeros(4, 6) for m in method.modalities}
    weights = method.prototype_weights(logits, torch.tensor([0, 1, 2, 3]))
    assert {m: float(w) for m, w in weights.items()} == {"audio": 0.0, "visual": 0.0}


def test_no_prototype_loss_after_the_cut_off_epoch():
    method, bundle = make_method("pmr")
    assert method.modulating(70) and not method.modulating(71)
    batch = first_batch(bundle, 60)
    _strong_weak_prototypes(method, batch, "audio")
    at_70, _ = _grads(method, batch, epoch=70)
    at_71, loss_71 = _grads(method, batch, epoch=71)
    method.alpha = 0.0
    ce_only, loss_ce = _grads(method, batch, epoch=0)
    assert torch.equal(at_71["visual"], ce_only["visual"]) and torch.allclose(loss_71, loss_ce)
    assert not torch.allclose(at_70["visual"], ce_only["visual"])


# ---------------------------------------------------------------------- options, data, state


def test_alpha_and_cut_off_per_preset_and_dataset_and_override():
    assert _on("cremad")[0].resolved_options()["alpha"] == 1.0
    original = _on("cremad", preset="original")[0].resolved_options()
    assert (original["alpha"], original["modulation_end"], original["momentum"]) == (5.0, 100, 0.0)
    ave = _on("ave", preset="original")[0].resolved_options()
    assert (ave["alpha"], ave["modulation_end"], ave["proto_data"]) == (2.0, 70, "val")
    assert _on("ave", preset="original", alpha=0.5)[0].resolved_options()["alpha"] == 0.5
    amst = _on("cremad")[0].resolved_options()
    assert (amst["modulation_end"], amst["momentum"], amst["proto_fraction"]) == (70, 0.2, 0.1)
    with pytest.raises(UserError, match="proto_fraction"):
        _on("cremad", proto_fraction=0)


def test_three_modalities_raise_the_documented_error():
    with pytest.raises(
        UnsupportedDataset,
        match="pmr supports exactly two modalities; dataset 'synthetic-avt' has audio, text, visual",
    ):
        make_method("pmr", dataset="synthetic-avt")


def test_extra_state_round_trip():
    method, _ = make_method("pmr")
    assert method.extra_state() == {"prototypes": None}
    method.prototypes = {m: torch.randn(6, method.ctx.embedding_dim) for m in method.modalities}
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    other, _ = make_method("pmr", seed=1)
    other.load_state_dict(torch.load(buffer))
    for m in method.modalities:
        assert torch.equal(other.prototypes[m], method.prototypes[m])


def test_prediction_is_the_fused_lsum_logits():
    method, bundle = make_method("pmr")
    batch = first_batch(bundle)
    method.model.eval()
    pred = method.predict(batch.inputs)
    torch.testing.assert_close(pred.logits, pred.modality_logits["audio"] + pred.modality_logits["visual"])


# ---------------------------------------------------------------------- end to end


def _spec():
    return run_spec("pmr", epochs=2, synthetic_samples=160)




def test_trainer_runs_and_resumes_with_the_same_prototypes(tmp_path):
    bundle = load_bundle(protocol=_spec().protocol)
    whole, resumed = whole_and_resumed(_spec(), bundle, tmp_path)
    assert whole["method_resolved"]["alpha"] == 1.0
    assert all(torch.isfinite(torch.tensor(whole["curves"]["train_loss"])))
    for key in ("train_loss", "val_acc", "test_acc"):
        assert resumed["curves"][key] == whole["curves"][key]
