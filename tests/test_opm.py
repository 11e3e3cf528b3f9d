"""OPM: drop probabilities on hand-built scores, the drop and its 1/(1 − θ) scale, the warm-up, the
training step with a certain drop, the original preset, three modalities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.opm import drop_features, drop_probabilities, part_scores
from tests.helpers import first_batch, make_method


def test_part_scores_sum_true_class_probabilities():
    parts = {"audio": torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]]), "visual": torch.zeros(2, 2)}
    s = part_scores(parts, torch.tensor([1, 0]))
    torch.testing.assert_close(s, torch.tensor([0.75 + 0.5, 1.0]))


def test_drop_probabilities_on_hand_built_scores():
    q = drop_probabilities(torch.tensor([30.0, 10.0]), q_base=0.5, lam=0.5)
    torch.testing.assert_close(q, torch.tensor([0.5 * (1 + 0.5 * math.tanh(2.0)), 0.0]))
    q = drop_probabilities(torch.tensor([10.0, 30.0]), q_base=0.8, lam=1.0)  # clipped at 1
    torch.testing.assert_close(q, torch.tensor([0.0, 1.0]))
    assert drop_probabilities(torch.tensor([10.0, 10.0]), 0.5, 0.5).tolist() == [0.0, 0.0]  # tie
    # three modalities: ratio over the sum of the others (BalanceBenchmark's rule)
    q = drop_probabilities(torch.tensor([50.0, 10.0, 10.0]), 0.5, 0.5)
    torch.testing.assert_close(q, torch.tensor([0.5 * (1 + 0.5 * math.tanh(1.5)), 0.0, 0.0]))


def test_drop_zeroes_the_dominant_and_rescales_everything_forward_and_backward():
    e = {"audio": torch.randn(8, 4, requires_grad=True), "visual": torch.randn(8, 4, requires_grad=True)}
    out = drop_features(e, torch.tensor([1.0, 0.0]), p_exe=1.0)  # θ = 0.5: × 2
    assert torch.equal(out["audio"], torch.zeros(8, 4))
    torch.testing.assert_close(out["visual"], 2 * e["visual"])
    sum(o.sum() for o in out.values()).backward()
    torch.testing.assert_close(e["visual"].grad, torch.full((8, 4), 2.0))
    torch.testing.assert_close(e["audio"].grad, torch.zeros(8, 4))
    same = drop_features(e, torch.tensor([1.0, 0.0]), p_exe=0.0)  # the drop does not execute
    assert all(torch.equal(same[m], e[m]) for m in e)


def test_drop_rate_per_sample_is_q():
    torch.manual_seed(0)
    e = {"audio": torch.ones(4000, 2), "visual": torch.ones(4000, 2)}
    out = drop_features(e, torch.tensor([0.3, 0.0]), p_exe=1.0)
    dropped = (out["audio"][:, 0] == 0).float().mean().item()
    assert 0.27 < dropped < 0.33
    assert torch.allclose(out["visual"], torch.full_like(out["visual"], 1 / (1 - 0.15)))


def test_training_step_warm_up_then_a_certain_drop_of_the_dominant_modality():
    method, bundle = make_method("opm", seed=2, q_base=1.0, p_exe=1.0, warmup=1)
    batch = first_batch(bundle)
    head, encoders = method.model["head"], method.model["encoders"]
    with torch.no_grad():
        emb = {m: encoders[m](batch.inputs[m]) for m in method.modalities}
        plain = F.cross_entropy(head(emb)[0], batch.labels)
    warm = method.training_step(batch, epoch=0)
    assert method.last_q is None  # no drop in the warm-up
    method, _ = make_method("opm", seed=2, q_base=1.0, p_exe=1.0, warmup=1)
    with torch.no_grad():
        emb = {m: method.model["encoders"][m](batch.inputs[m]) for m in method.modalities}
        parts = method.model["head"](emb)[1]
    q = drop_probabilities(part_scores(parts, batch.labels), 1.0, 0.5)
    dominant = [m for m, qm in zip(method.modalities, q, strict=True) if qm > 0]
    assert len(dominant) == 1 and q.max() == 1.0  # q_base 1: the dominant modality is always dropped
    expected_input = {m: torch.zeros_like(e) if m in dominant else e / (1 - q.mean()) for m, e in emb.items()}
    with torch.no_grad():
        expected = F.cross_entropy(method.model["head"](expected_input)[0], batch.labels)
    out = method.training_step(batch, epoch=1)
    torch.testing.assert_close(method.last_q, q)
    assert float(out.loss) == pytest.approx(float(expected), rel=1e-5)
    assert float(warm.loss) == pytest.approx(float(plain), rel=1e-5)


def test_original_preset_uses_the_codes_adamw_and_step():
    method, _ = make_method("opm", preset="original")
    for opt in method.optimizers.values():
        assert isinstance(opt, torch.optim.AdamW)
        assert opt.param_groups[0]["lr"] == 5e-5 and opt.param_groups[0]["weight_decay"] == 0.01
    assert {s.step_size for s in method.schedulers.values()} == {40}
    assert method.resolved_options()["optimizer"] == "adamw"
    harness, _ = make_method("opm")
    assert all(isinstance(o, torch.optim.SGD) for o in harness.optimizers.values())


def test_three_modalities_train_after_warm_up():
    method, bundle = make_method("opm", dataset="synthetic-avt", warmup=0)
    out = method.training_step(first_batch(bundle), epoch=0)
    assert torch.isfinite(out.loss) and method.last_q.shape == (3,)
    assert int((method.last_q > 0).sum()) <= 1


def test_one_modality_is_unsupported():
    with pytest.raises(UnsupportedDataset, match="two or more"):
        registry.methods.get("opm").check_supported(None, ("audio",))
