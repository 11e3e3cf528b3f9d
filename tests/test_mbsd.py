"""MBSD: the weighted RS and KL terms on hand-built logits, the loss inside and outside the window."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from amst_bench.errors import UserError
from amst_bench.methods.mbsd import mbsd_terms, pair_terms
from tests.helpers import first_batch, make_method


def test_pair_terms_on_hand_built_logits():
    # sample 0: audio right (p = e²/(e²+1)), visual 0.5: w = p − 0.5; sample 1: both wrong: w = 0
    z_a = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    z_v = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1])
    p = math.exp(2) / (math.exp(2) + 1)
    w0 = p - 0.5
    rs, kl = pair_terms(z_a, z_v, labels, rs_on_logits=True)
    assert float(rs) == pytest.approx(w0 * ((2.0**2 + 0.0) / 2) / 2)
    # the code's kl_div(ps, pw): pw · (log pw − ps), ps a probability
    assert float(kl) == pytest.approx(w0 * 0.5 * (math.log(0.5) - p) / 2)
    _, kl_log = pair_terms(z_a, z_v, labels, rs_on_logits=True, kl_input="log")
    assert float(kl_log) == pytest.approx(w0 * 0.5 * (math.log(0.5) - math.log(p)) / 2)
    # on probabilities (the code's three-modality branch)
    rs_p, _ = pair_terms(z_a, z_v, labels, rs_on_logits=False)
    assert float(rs_p) == pytest.approx(w0 * (2 * (p - 0.5) ** 2 / 2) / 2)


def test_equal_modalities_give_no_terms():
    z = torch.randn(5, 4)
    rs, kl = pair_terms(z, z.clone(), torch.arange(5) % 4, rs_on_logits=True)
    assert float(rs) == 0.0 and float(kl) == 0.0


def test_three_modalities_average_the_three_pairs_on_probabilities():
    torch.manual_seed(0)
    z = {m: torch.randn(6, 3) for m in ("audio", "text", "visual")}
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    rs, kl = mbsd_terms(z, labels)
    pairs = [pair_terms(z[a], z[b], labels, rs_on_logits=False)
             for a, b in (("audio", "text"), ("audio", "visual"), ("text", "visual"))]
    torch.testing.assert_close(rs, sum(t[0] for t in pairs) / 3)
    torch.testing.assert_close(kl, sum(t[1] for t in pairs) / 3)


def test_loss_is_fused_ce_plus_unimodal_ce_plus_terms_inside_the_window_only():
    method, bundle = make_method("mbsd", modulation_ends=5)
    batch = first_batch(bundle, 40)
    emb = method.encode(method.model["encoders"], batch.inputs, method.modalities)
    logits, parts = method.model["head"](emb)
    rs, kl = mbsd_terms(parts, batch.labels)
    expected = sum(F.cross_entropy(z, batch.labels) for z in parts.values()) + rs + kl
    torch.testing.assert_close(method.extra_loss(batch, 5, emb, logits, parts), expected)
    assert method.extra_loss(batch, 6, emb, logits, parts) is None
    out = method.training_step(batch, 0)
    assert torch.isfinite(out.loss)


def test_three_modalities_run():
    method, bundle = make_method("mbsd", dataset="synthetic-avt")
    assert method.modalities == ("audio", "text", "visual")
    assert torch.isfinite(method.training_step(first_batch(bundle, 40), 0).loss)


def test_bad_window_is_one_line():
    with pytest.raises(UserError, match=r"mbsd.modulation_ends \(0\) is before mbsd.modulation_starts \(1\)"):
        make_method("mbsd", modulation_starts=1, modulation_ends=0)
