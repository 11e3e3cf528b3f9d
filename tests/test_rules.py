"""Protocol rules, each checked so that the test fails when the rule breaks: AMST-Full's
`skipped_forward`, evaluation of a partial last batch, seeding, resume with the global RNG, and
selection of the FIRST best epoch."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn as nn

from amst_bench import registry
from amst_bench.data.tensors import DatasetBundle, TensorSplit
from amst_bench.options import build_config
from amst_bench.report.results import ResultStore
from amst_bench.train.environment import seed_everything
from amst_bench.train.method import Prediction
from amst_bench.train.models import Probes, build_encoder, build_head
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer
from tests.helpers import (
    changed,
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    small_protocol,
    snapshot,
    whole_and_resumed,
)
from tests.test_faithfulness import scripted_spec

# ---------------------------------------------------------------------- AMST-Full: skipped_forward


@pytest.mark.parametrize("mode", ["official", "none"])
def test_amst_full_skipped_encoders_forwarded_or_not_and_never_updated(mode):
    method, bundle = make_method("amst-full", skipped_forward=mode, **{"skip.audio": 5})
    calls = Counter()
    audio = {name: module["encoders"]["audio"] for name, module in method.model.items()}
    for name, enc in audio.items():
        enc.register_forward_hook(lambda *_, key=name: calls.update([key]))
    before = {name: snapshot(enc) for name, enc in audio.items()}
    method.training_step(first_batch(bundle), epoch=1)  # 1 % 5 != 0: audio skipped in both modules
    for name, enc in audio.items():
        assert changed(before[name], enc) == set()  # no update
        assert all(p.grad is None for p in enc.parameters())  # no gradient at all
        moved = changed(before[name], enc, kind="buffer")
        if mode == "official":  # forwarded in train mode: BatchNorm running statistics move
            assert calls[name] == 1
            assert {n for n in moved if "running_mean" in n}
        else:  # not forwarded at all
            assert calls[name] == 0
            assert moved == set()
    visual = method.model["joint"]["encoders"]["visual"]
    assert all(p.grad is not None for p in visual.parameters())  # the trained one did learn


# ---------------------------------------------------------------------- evaluation sees every sample


class _CountingMethod:
    """predict() returns the stored 'audio' tensor as logits and counts the samples it saw."""

    modalities = ("audio",)

    def __init__(self):
        self.model = nn.Linear(1, 1)
        self.batch_sizes: list[int] = []

    def predict(self, inputs):
        logits = inputs["audio"]
        self.batch_sizes.append(len(logits))
        return Prediction(logits, {})

    def subset_logits(self, prediction, modalities):
        return None  # no balance metrics


def test_evaluation_of_100_samples_with_batch_64_counts_all_100(tmp_path):
    n, classes = 100, 4
    labels = torch.arange(n) % classes
    logits = torch.zeros(n, classes)
    logits[torch.arange(n), (labels + 1) % classes] = 1.0  # wrong…
    logits[64:] = 0.0
    logits[torch.arange(64, n), labels[64:]] = 1.0  # …except the 36 samples of the partial batch
    split = TensorSplit({"audio": logits}, labels)
    bundle = DatasetBundle("count", ("audio",), classes, split, split, split)
    cls = registry.methods.get("naive")
    spec = RunSpec(cls, build_config(cls, {}), "synthetic", 0, small_protocol(batch_size=64))
    method = _CountingMethod()
    evaluation = Trainer(spec, bundle, ResultStore(tmp_path)).evaluate(method, Probes((), 4, classes), split)
    assert method.batch_sizes == [64, 36] and sum(method.batch_sizes) == 100
    assert evaluation.accuracy == pytest.approx(36 / 100)


# ---------------------------------------------------------------------- seeding


def _initial_weights(seed: int) -> torch.Tensor:
    seed_everything(seed)
    encoder = build_encoder("audio", "tiny", 32, (1, 16, 16))
    head = build_head("lsum", ("audio", "visual"), 32, 6)
    return torch.cat([p.detach().flatten() for p in [*encoder.parameters(), *head.parameters()]])


def test_seed_everything_same_seed_same_weights_other_seed_other_weights():
    assert torch.equal(_initial_weights(0), _initial_weights(0))
    assert not torch.equal(_initial_weights(0), _initial_weights(1))
    method_a, _ = make_method("naive", seed=0)
    method_b, _ = make_method("naive", seed=1)
    a, b = method_a.model.state_dict(), method_b.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


# ---------------------------------------------------------------------- resume with the global RNG






def test_resumed_ogm_ge_run_draws_the_same_noise_as_an_uninterrupted_one(tmp_path):
    """OGM-GE's gradient noise comes from the global torch RNG: a checkpoint must carry its state."""
    bundle = load_bundle()
    spec = run_spec("ogm-ge", epochs=4)
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path)
    assert comparable(resumed) == comparable(whole)
    # and the noise matters: without it (plain OGM) the same run ends elsewhere
    plain = run_spec("ogm-ge", {"noise": "false"}, epochs=4)
    assert comparable(Trainer(plain, bundle, ResultStore(tmp_path / "plain")).run()) != comparable(whole)


# ---------------------------------------------------------------------- selection: the first best epoch


def _rare_and_common(split):
    counts = torch.bincount(split.labels, minlength=6)
    rare, common = int(counts.argmin()), int(counts.argmax())
    assert counts[rare] < counts[common]
    return rare, common, counts.float() / len(split)


@pytest.mark.filterwarnings("ignore:Detected call of")  # it trains nothing
def test_best_epoch_is_the_first_of_tied_best_epochs(tmp_path):
    bundle = load_bundle()
    v_rare, v_common, _ = _rare_and_common(bundle.val)
    t_rare, t_common, t_share = _rare_and_common(bundle.test)
    # validation: rare, common, common (an exact tie), rare; test differs between the tied epochs
    spec = scripted_spec((v_rare, v_common, v_common, v_rare), (t_rare, t_common, t_rare, t_rare), 4)
    result = Trainer(spec, bundle, ResultStore(tmp_path)).run()
    val = result["curves"]["val_acc"]
    assert val[1] == val[2] > val[0]
    assert result["best_epoch"] == 1
    assert result["test"]["accuracy"] == pytest.approx(float(t_share[t_common]))  # epoch 1's, not 2's
