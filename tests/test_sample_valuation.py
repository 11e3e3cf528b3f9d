"""Sample valuation: Shapley contributions, the re-sampled set on hand-built contributions, dropped
features in a step, the schedule, presets, three modalities, resume."""

from __future__ import annotations

import pytest
import torch

from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.sample_valuation import (
    KEEP_KEY,
    copies_for,
    modality_level_plan,
    resample_plan,
    shapley_contributions,
)
from tests.helpers import (
    cli,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    whole_and_resumed,
)

A, V, AV = frozenset({"audio"}), frozenset({"visual"}), frozenset({"audio", "visual"})


def test_two_modality_contributions_are_the_codes_formula():
    # rows: (audio alone right, visual alone right, both right)
    table = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0],
                          [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]])
    correct = {A: table[:, 0].bool(), V: table[:, 1].bool(), AV: table[:, 2].bool()}
    c = shapley_contributions(correct, ("audio", "visual"))
    v_a, v_v, v_all = table[:, 0].float(), table[:, 1].float(), 2 * table[:, 2].float()
    torch.testing.assert_close(c["audio"], (v_a + v_all - v_v) / 2)
    torch.testing.assert_close(c["visual"], (v_v + v_all - v_a) / 2)
    assert c["audio"].tolist() == [0.0, 0.5, -0.5, 0.0, 1.0, 1.5, 0.5, 1.0]


def test_three_modality_contributions_sum_to_the_full_value():
    subsets = [frozenset(s) for s in ("a", "b", "c", "ab", "ac", "bc", "abc")]
    torch.manual_seed(0)
    correct = {s: torch.rand(20) > 0.5 for s in subsets}
    c = shapley_contributions(correct, ("a", "b", "c"))
    torch.testing.assert_close(sum(c.values()), 3 * correct[frozenset("abc")].float())


def test_copies_follow_the_codes_thresholds():
    assert [copies_for(c) for c in (1.5, 1.0, 0.5, 0.0, -0.5)] == [0, 0, 1, 2, 3]


def test_resampled_set_on_hand_built_contributions():
    contributions = {"audio": torch.tensor([1.0, 0.5, 0.0, -0.5]),
                     "visual": torch.tensor([1.5, 1.0, 0.5, 0.0])}
    indices, keep = resample_plan(contributions, ("audio", "visual"))
    # every sample once with both; then per sample: audio-only copies, visual-only copies
    assert indices.tolist() == [0, 1, 2, 3, 1, 2, 2, 2, 3, 3, 3, 3, 3]
    assert keep.tolist() == [[1, 1]] * 4 + [[1, 0]] + [[1, 0]] * 2 + [[0, 1]] + [[1, 0]] * 3 + [[0, 1]] * 2


def test_a_copy_trains_only_its_kept_modality():
    method, bundle = make_method("sample-valuation")
    batch = first_batch(bundle, 8)
    batch.inputs[KEEP_KEY] = torch.tensor([[1.0, 0.0]] * 8)  # audio-only copies

    def backward_only(optimizers, loss, before_step=None):
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()

    method.step = backward_only
    out = method.training_step(batch, 6)
    visual = method.model["encoders"]["visual"].parameters()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in visual)
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0
               for p in method.model["encoders"]["audio"].parameters())
    assert float(out.embeddings["visual"].detach().abs().sum()) > 0  # probes see real features


def test_resampling_starts_after_warmup_and_grows_the_epoch():
    method, bundle = make_method("sample-valuation", warmup=2)
    method.ctx.train = bundle.train
    method.on_train_epoch_start(1)
    assert method.training_split(1, bundle.train) is bundle.train
    method.on_train_epoch_start(2)
    split = method.training_split(2, bundle.train)
    entry = method.history[-1]
    assert len(split) == entry["train_size"] == len(bundle.train) + sum(entry["copies"].values())
    assert torch.equal(split.labels[: len(bundle.train)], bundle.train.labels)
    assert split.inputs[KEEP_KEY].shape == (len(split), 2)
    assert method.model.training


def test_original_preset_is_adam_5e5_steplr_30():
    method, _ = make_method("sample-valuation", preset="original")
    resolved = method.resolved_options()
    assert (resolved["optimizer"], resolved["lr"], resolved["lr_step"]) == ("Adam", 5e-5, 30)
    harness = make_method("sample-valuation")[0].resolved_options()
    assert (harness["optimizer"], harness["lr"], harness["lr_step"]) == ("SGD", 1e-3, 70)


def test_three_modalities_resample_and_train():
    method, bundle = make_method("sample-valuation", dataset="synthetic-avt", warmup=1)
    method.ctx.train = bundle.train
    method.on_train_epoch_start(1)
    split = method.training_split(1, bundle.train)
    assert split.inputs[KEEP_KEY].shape[1] == 3
    batch = first_batch(bundle, 8)
    batch.inputs[KEEP_KEY] = split.inputs[KEEP_KEY][-8:]
    assert torch.isfinite(method.training_step(batch, 1).loss)


def _spec():
    return run_spec("sample-valuation", {"warmup": "1"}, epochs=2, synthetic_samples=120)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    bundle = load_bundle(protocol=_spec().protocol)
    whole, resumed = whole_and_resumed(_spec(), bundle, tmp_path, crash_epoch=0)
    assert [h["epoch"] for h in whole["method_resolved"]["history"]] == [1]
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")


def test_modality_level_set_on_hand_built_mean_contributions():
    # gaps: audio 1 − 1.0 = 0, visual 1 − 0.25 = 0.75: 0.75 · 2/3 · 30 = 15 visual-only copies
    indices, keep = modality_level_plan({"audio": 1.0, "visual": 0.25}, ("audio", "visual"), 30, 1.0,
                                        torch.Generator().manual_seed(0))
    assert len(indices) == 45 and indices[:30].tolist() == list(range(30))
    assert keep[:30].tolist() == [[1.0, 1.0]] * 30 and keep[30:].tolist() == [[0.0, 1.0]] * 15
    assert int(indices[30:].max()) < 30
    same, _ = modality_level_plan({"audio": 0.5, "visual": 0.5}, ("audio", "visual"), 30, 1.0)
    assert len(same) == 30  # equal gaps: nothing re-sampled


def test_modality_level_valuates_a_part_and_is_two_modality_only():
    method, bundle = make_method("sample-valuation", level="modality", warmup=1)
    method.ctx.train = bundle.train
    method.on_train_epoch_start(1)
    entry = method.history[-1]
    assert entry["train_size"] == len(bundle.train) + sum(entry["copies"].values())
    assert min(entry["copies"].values()) == 0  # one modality's copies only
    with pytest.raises(UnsupportedDataset, match="level=modality compares two modalities' gaps"):
        make_method("sample-valuation", dataset="synthetic-avt", level="modality")


def test_modality_level_on_three_modalities_is_one_line(tmp_path, capsys):
    code = cli("run", "--methods", "sample-valuation", "--datasets", "synthetic-avt", "--profile", "smoke",
               "--seeds", "0", "--set", "sample-valuation.level=modality",
               "--results-dir", str(tmp_path / "r"), "--leaderboard-dir", str(tmp_path / "b"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [
        "amst-bench: error: sample-valuation level=modality compares two modalities' gaps; dataset "
        "'synthetic-avt' has audio, text, visual (use level=sample)"]
    assert not list((tmp_path / "r").rglob("*.json"))
