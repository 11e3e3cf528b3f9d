"""The input budget's once-per-split step (InputBudget.settle): the smoke budget pools the fbank
exactly as per batch and shrinks large frames once; the paper budget changes nothing; a split
settles once for all its runs and epochs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from amst_bench.data.augment import WORKING_SIDE, InputBudget, input_preparer, shrink_frames
from amst_bench.data.tensors import TensorSplit, iterate_batches


def stored(n: int = 10, height: int = 150, width: int = 200) -> dict[str, torch.Tensor]:
    """Cache-like inputs: fp16 fbank and uint8 frames in a padded canvas with true sizes."""
    gen = torch.Generator().manual_seed(0)
    frames = torch.zeros(n, 3, 3, height, width, dtype=torch.uint8)
    sizes = torch.tensor([[height, width]] * 3 * n, dtype=torch.int32).view(n, 3, 2)
    sizes[::2] = torch.tensor([height - 30, width - 20], dtype=torch.int32)  # two frame sizes
    for i in range(n):
        for t in range(3):
            h, w = sizes[i, t].tolist()
            frames[i, t, :, :h, :w] = torch.randint(0, 256, (3, h, w), generator=gen, dtype=torch.uint8)
    fbank = torch.randn(n, 64, 32, generator=gen).half()
    return {"audio": fbank, "visual": frames, "visual_size": sizes}


def test_the_paper_budget_settles_nothing():
    inputs = stored()
    settled = input_preparer(224, 1).settle(inputs)
    assert all(settled[m] is inputs[m] for m in inputs)


def test_settled_fbank_is_exactly_the_per_batch_pooling():
    inputs = stored()
    budget = InputBudget(32, 4)
    settled = budget.settle(inputs, chunk=3)
    assert settled["audio"].shape == (10, 1, 16, 8)
    per_batch = budget({"audio": inputs["audio"]}, True)["audio"]
    assert torch.equal(budget({"audio": settled["audio"]}, True)["audio"], per_batch)


def test_large_frames_shrink_once_with_their_aspect_and_true_sizes():
    inputs = stored()
    settled = InputBudget(32, 4).settle(inputs, chunk=4)
    side = WORKING_SIDE * 32
    sizes = settled["visual_size"].view(-1, 2)
    assert int(sizes.min()) == side and settled["visual"].dtype == torch.uint8
    assert set(map(tuple, sizes.tolist())) == {(64, 96), (64, 85)}  # 120×180 and 150×200, aspect kept
    frame, h, w = inputs["visual"][1, 0], *inputs["visual_size"][1, 0].tolist()
    want = F.interpolate(frame[None, :, :h, :w].float(), size=(64, 85), mode="bilinear", antialias=True)
    got = settled["visual"][1, 0, :, :64, :85].float()
    assert (got - want[0]).abs().max() <= 1.0  # uint8 rounding
    assert settled["visual"].shape[-2:] == (64, 96)
    assert settled["visual"][1, 0, :, :, 85:].eq(0).all()  # the smaller frame's padding stays padding


def test_small_frames_are_left_as_stored():
    frames = torch.randint(0, 256, (4, 3, 60, 40), dtype=torch.uint8)
    assert shrink_frames(frames, torch.tensor([[60, 40]] * 4), 64) is None


def test_evaluation_inputs_from_settled_frames_stay_close_to_those_from_the_stored_ones():
    inputs = stored()
    budget = InputBudget(32, 4)
    direct = budget(inputs, False)["visual"]
    settled = budget(budget.settle(inputs), False)["visual"]
    assert settled.shape == direct.shape == (10, 3, 3, 32, 32)
    assert (settled - direct).abs().mean() < 0.05  # normalised units: a resize in two steps


def test_a_split_settles_once_for_every_copy_on_its_device_and_every_epoch():
    calls = []

    class Counting(InputBudget):
        def settle(self, inputs, chunk=256):
            calls.append(1)
            return super().settle(inputs, chunk)

    inputs = stored()
    split = TensorSplit(inputs, torch.arange(10))
    budget = Counting(32, 4)
    for copy in (split, split.to("cpu"), split.to("cpu")):
        for train in (True, False):
            shuffle = torch.Generator().manual_seed(0)
            batches = list(iterate_batches(copy, 4, shuffle, prepare=budget, train=train))
            assert batches[0].inputs["visual"].shape == (4, 3, 3, 32, 32)
            assert batches[0].inputs["audio"].shape == (4, 1, 16, 8)
    assert len(calls) == 1
