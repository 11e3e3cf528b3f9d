"""Greedy: MMTM on hand-built weights (cross-modal scales, running averages, the re-balancing
replacement), the re-balancing schedule on scripted learning speeds, the staged encoders equal the
encoders, the speed ratio, two modalities only, the original preset, resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from amst_bench import registry
from amst_bench.errors import UnsupportedDataset
from amst_bench.methods.greedy import MMTM, Curation, StagedEncoder, TrainLossPlateau, speed_ratio
from amst_bench.train.models import build_encoder
from tests.helpers import (
    comparable,
    first_batch,
    load_bundle,
    make_method,
    run_spec,
    whole_and_resumed,
)


def _mmtm() -> MMTM:
    mmtm = MMTM({"audio": 2, "visual": 2}, ratio=4)  # squeeze 4 → 2
    with torch.no_grad():
        mmtm.fc_squeeze.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]))
        mmtm.fc_squeeze.bias.zero_()
        for layer in mmtm.fc_out.values():
            layer.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, -1.0]]))
            layer.bias.zero_()
    return mmtm


def test_mmtm_scales_by_hand_and_cross_modal_flow():
    mmtm = _mmtm()
    s = {"audio": torch.tensor([[1.0, 5.0]]), "visual": torch.tensor([[2.0, 7.0]])}
    scales = mmtm(s)
    z = torch.relu(torch.tensor([1.0, 2.0]))  # rows pick audio[0] and visual[0]
    expected = torch.sigmoid(torch.tensor([z[0] + z[1], -z[1]]))
    torch.testing.assert_close(scales["audio"][0], expected)
    torch.testing.assert_close(scales["visual"][0], expected)
    other = mmtm({"audio": s["audio"], "visual": torch.tensor([[4.0, 7.0]])})
    assert not torch.allclose(other["audio"], scales["audio"])  # audio's scale reads visual


def test_running_average_and_rebalancing_replacement():
    mmtm = _mmtm()
    t = torch.tensor
    batches = [{"audio": t([[1.0, 0.0], [3.0, 0.0]]), "visual": t([[0.0, 0.0], [2.0, 0.0]])},
               {"audio": t([[2.0, 0.0], [0.0, 0.0]]), "visual": t([[1.0, 0.0], [1.0, 0.0]])}]
    seen = [mmtm(b, update=True) for b in batches]
    for m in ("audio", "visual"):
        torch.testing.assert_close(mmtm.average(m), (seen[0][m].mean(0) + seen[1][m].mean(0)) / 2)
    cared = mmtm({"audio": torch.tensor([[9.0, 0.0]]), "visual": torch.tensor([[5.0, 0.0]])}, caring="visual")
    torch.testing.assert_close(cared["visual"][0], mmtm.average("visual"))
    free = mmtm({"audio": torch.tensor([[9.0, 0.0]]), "visual": torch.tensor([[5.0, 0.0]])})
    torch.testing.assert_close(cared["audio"], free["audio"])  # the other modality as usual
    slip = _mmtm()
    firsts = [slip(b, update=True, average_source="code")["audio"].mean(0) for b in batches]
    torch.testing.assert_close(slip.average("visual"), (firsts[0] + firsts[1]) / 2)  # the code's slip


def test_rebalancing_schedule_on_scripted_speeds():
    calls = []

    def measure(main, bypass):
        return lambda: calls.append(1) or (main, bypass)

    c = Curation([0.0, 0.0], [0.0, 0.0])
    c.after_backward(False, 0.01, 3, measure([1.0, 1.0], [10.0, 1.0]))  # locked: measured, no window
    assert not c.active and c.d == pytest.approx(math.log10(10) - math.log10(1))
    c.after_backward(True, 0.01, 3, measure([1.0, 1.0], [10.0, 1.0]))  # d > ε: care for modality 0
    assert c.active and c.caring == 0 and len(calls) == 2
    for _ in range(2):
        c.after_backward(True, 0.01, 3, measure([1.0, 1.0], [1.0, 1.0]))
        assert c.active
    c.after_backward(True, 0.01, 3, measure([1.0, 1.0], [1.0, 1.0]))  # third step ends the window
    assert not c.active and len(calls) == 2  # nothing measured inside the window
    # sums never reset: M_bypass = (20 + 1000, 2 + 1), M_main = (3, 3)
    c.after_backward(True, 0.01, 3, measure([1.0, 1.0], [1000.0, 1.0]))
    assert c.d == pytest.approx(math.log10(1020 / 3) - math.log10(3 / 3)) and c.active and c.caring == 0
    d = Curation([1.0, 1.0], [1.0, 1.0])
    d.after_backward(True, 0.01, 3, lambda: ([1.0, 1.0], [1.0, 30.0]))
    assert d.active and d.caring == 1  # d < 0
    e = Curation([1.0, 1.0], [1.0, 1.0])
    e.after_backward(True, 0.5, 3, lambda: ([1.0, 1.0], [1.0, 1.2]))
    assert not e.active  # |d| = log10(2.2 / 2) < 0.5


def test_random_rebalancing_draws_one_of_three_modes():
    c, g = Curation([0.0, 0.0], [0.0, 0.0]), torch.Generator().manual_seed(0)
    c.after_random(False, g)
    assert not c.active
    seen = set()
    for _ in range(60):
        c.after_random(True, g)
        seen.add((c.active, c.caring if c.active else None))
    assert seen == {(False, None), (True, 0), (True, 1)} and c.d is None  # d is never measured
    method, _ = make_method("greedy", rebalance="random")
    state = method.extra_state()
    expected = torch.randint(3, (5,), generator=method.draws)
    again, _ = make_method("greedy", rebalance="random", seed=1)
    again.load_extra_state(state)  # the draws resume where the checkpoint left them
    assert torch.equal(torch.randint(3, (5,), generator=again.draws), expected)


def test_speed_ratio_by_hand():
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0]]))
    layer.weight.grad = torch.tensor([[1.0, 2.0]])
    bias = nn.Parameter(torch.tensor([1.0]))  # no gradient: adds to the weight norm only
    assert float(speed_ratio([layer.weight, bias])) == pytest.approx(5.0 / 26.0)


@pytest.mark.parametrize(("modality", "kind", "shape"), [
    ("audio", "tiny", (1, 16, 16)), ("visual", "tiny", (2, 3, 16, 16)),
    ("visual", "resnet18", (2, 3, 32, 32)),  # the paper's encoders: after layer2, layer3, layer4
])
def test_staged_encoder_equals_the_encoder_with_unit_scales(modality, kind, shape):
    torch.manual_seed(0)
    encoder = build_encoder(modality, kind, 8, shape).eval()
    x = torch.randn(2, *shape)
    staged = StagedEncoder(encoder)
    h = staged.start(x)
    for i, block in enumerate(staged.blocks):
        h = block(h)
        assert staged.squeeze(h).shape == (2, staged.channels[i])
        h = staged.excite(h, torch.ones(2, staged.channels[i]))
    with torch.no_grad():
        torch.testing.assert_close(staged.finish(h), encoder(x))


def test_two_conv_modalities_only():
    cls = registry.methods.get("greedy")
    with pytest.raises(UnsupportedDataset, match="exactly two encoders"):
        make_method("greedy", dataset="synthetic-avt")
    assert cls.family == "architecture"


def test_original_preset_and_a_rebalancing_training_step():
    method, bundle = make_method("greedy", preset="original")
    group = method.optimizers["encoders"].param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0 and group["weight_decay"] == 0
    assert all(isinstance(s, TrainLossPlateau) for s in method.schedulers.values())
    method.on_train_epoch_start(5)
    method.curation.active, method.curation.caring = True, 1
    method.training_step(first_batch(bundle), 5)
    assert method._counts == {"audio": 0, "visual": 1, "steps": 1} and method.curation.step == 1
    for s in method.schedulers.values():
        s.step()  # steps on the epoch's training loss


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    spec = run_spec("greedy", {"starting_epoch": "0", "epsilon": "0"}, epochs=2)
    bundle = load_bundle()
    whole, resumed = whole_and_resumed(spec, bundle, tmp_path, crash_epoch=0)
    assert any(v > 0 for h in whole["method_resolved"]["history"] for v in h["rebalancing_share"].values())
    assert comparable(resumed, "method_resolved") == comparable(whole, "method_resolved")
