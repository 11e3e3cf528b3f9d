"""The on-device frame transforms read only each frame's true region of the padded cache, and
match the official ones: RandomResizedCrop(224) boxes as torchvision draws them, evaluation as
torchvision's Resize((224, 224), antialias=True)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import RandomResizedCrop, Resize

from amst_bench.data.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    augment_frames,
    prepare_inputs,
    random_resized_boxes,
    resize_frames,
)

BLUE = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1)


def padded(regions: list[torch.Tensor], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float frames in a canvas whose padding is pure blue (never a colour of the regions)."""
    canvas = BLUE.expand(len(regions), 3, height, width).clone()
    for frame, region in zip(canvas, regions, strict=True):
        frame[:, : region.shape[1], : region.shape[2]] = region
    return canvas, torch.tensor([r.shape[1:] for r in regions])


def smooth(height: int, width: int) -> torch.Tensor:
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    return torch.stack([x * y, 0.5 + 0.4 * torch.sin(7 * x + 3 * y), (1 - y) * x * 0.5])


def test_training_crops_never_read_the_padding():
    torch.manual_seed(0)
    colour = torch.tensor([0.8, 0.2, 0.3]).view(3, 1, 1)
    shapes = [(30, 50), (50, 17), (64, 64), (1, 40), (45, 2)] * 40
    frames, sizes = padded([colour.expand(3, h, w) for h, w in shapes], 64, 64)
    out = augment_frames(frames, sizes, size=32)
    torch.testing.assert_close(out, colour.expand_as(out), rtol=0, atol=1e-6)


def test_a_full_scale_crop_covers_the_whole_true_region():
    region = torch.zeros(3, 40, 60)
    region[0, :, :30] = 1.0  # left half red
    region[1, :, 30:] = 1.0  # right half green
    frames, sizes = padded([region], 48, 80)
    whole = dict(scale=(1.0, 1.0), ratio=(1.5, 1.5))
    kept = augment_frames(frames, sizes, **whole, flip=0.0)
    # Enlarging, the crop is plain bilinear resampling of the true region, padding unseen.
    want = F.interpolate(region[None], size=(224, 224), mode="bilinear", align_corners=False)
    torch.testing.assert_close(kept, want, rtol=0, atol=1e-5)
    assert kept[0, 0, :, :100].min() > 0.99 and kept[0, 1, :, 124:].min() > 0.99
    assert kept[0, 2].abs().max() < 1e-6  # no blue: nothing from the padding
    torch.testing.assert_close(augment_frames(frames, sizes, **whole, flip=1.0), want.flip(-1))


def test_boxes_fall_back_to_the_torchvision_centre_crop():
    for height, width in ((10, 100), (100, 10), (40, 100), (100, 7)):  # no try fits: the fallback
        boxes = random_resized_boxes(torch.tensor([height]), torch.tensor([width]), scale=(1.0, 1.0))
        image = torch.zeros(3, height, width)
        top, left, h, w = RandomResizedCrop.get_params(image, (1.0, 1.0), (3 / 4, 4 / 3))
        assert boxes[0].tolist() == [left, top, left + w, top + h]


def test_box_statistics_match_torchvision_get_params():
    torch.manual_seed(0)
    n, height, width = 6000, 256, 455
    ours = random_resized_boxes(torch.full((n,), height), torch.full((n,), width))
    theirs = torch.tensor(
        [RandomResizedCrop.get_params(torch.zeros(1, height, width), (0.08, 1.0), (3 / 4, 4 / 3))
         for _ in range(n)],
        dtype=torch.float32,
    )  # (top, left, h, w)
    ow, oh = ours[:, 2] - ours[:, 0], ours[:, 3] - ours[:, 1]
    tw, th = theirs[:, 3], theirs[:, 2]
    for a, b, tolerance in (
        (ow * oh / (height * width), tw * th / (height * width), 0.015),
        ((ow / oh).log(), (tw / th).log(), 0.015),
        (ours[:, 1] / height, theirs[:, 0] / height, 0.015),
        (ours[:, 0] / width, theirs[:, 1] / width, 0.015),
    ):
        assert abs(a.mean() - b.mean()) < tolerance and abs(a.std() - b.std()) < tolerance
    assert ours[:, 2].max() <= width and ours[:, 3].max() <= height and ours.min() >= 0


def test_evaluation_is_torchvision_resize_of_each_true_region():
    regions = [smooth(40, 90), smooth(300, 120), smooth(40, 90).flip(-1)]
    frames, sizes = padded(regions, 300, 120)
    out = resize_frames(frames, sizes)
    for got, region in zip(out, regions, strict=True):
        torch.testing.assert_close(got, Resize((224, 224), antialias=True)(region), rtol=0, atol=1e-5)
    single = resize_frames(frames[:1, :, :40, :90], sizes[:1])  # one size: the single-call path
    torch.testing.assert_close(single, out[:1])


def test_prepare_inputs_uses_the_cached_sizes_of_uint8_frames():
    canvas, sizes = padded([smooth(30, 50), smooth(56, 20)], 56, 50)
    visual = canvas.mul(255).round().to(torch.uint8).view(2, 1, 3, 56, 50)
    inputs = {"visual": visual, "visual_size": sizes.view(2, 1, 2).to(torch.int32)}
    out = prepare_inputs(inputs, train=False)
    assert set(out) == {"visual"} and out["visual"].shape == (2, 1, 3, 224, 224)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for got, frame, (h, w) in zip(out["visual"][:, 0], visual[:, 0], sizes.tolist(), strict=True):
        # the official pipeline: Resize of the uint8 image, then ToTensor and Normalize
        resized = Resize((224, 224), antialias=True)(frame[:, :h, :w]).float() / 255
        torch.testing.assert_close(got * std + mean, resized, rtol=0, atol=1 / 255 + 1e-5)
    trained = prepare_inputs(inputs, train=True)["visual"]
    assert trained.shape == (2, 1, 3, 224, 224) and math.isfinite(trained.abs().max().item())


def test_the_input_budget_shrinks_frames_and_pools_the_fbank_on_the_device():
    from amst_bench.data.augment import input_preparer

    frames = torch.randint(0, 255, (2, 3, 3, 30, 40), dtype=torch.uint8)
    fbank = torch.randn(2, 64, 16).half()
    paper = input_preparer(224, 1)({"visual": frames, "audio": fbank}, False)
    smoke = input_preparer(32, 4)({"visual": frames, "audio": fbank}, True)
    assert paper["visual"].shape == (2, 3, 3, 224, 224) and paper["audio"].shape == (2, 1, 64, 16)
    assert smoke["visual"].shape == (2, 3, 3, 32, 32) and smoke["audio"].shape == (2, 1, 16, 4)
    assert torch.allclose(smoke["audio"][0, 0, 0, 0], fbank[0, :4, :4].float().mean())
