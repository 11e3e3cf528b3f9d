"""Turning cached compact tensors into model inputs on the device, with training augmentation.

The official code transforms each frame of the original image: training RandomResizedCrop(224)
(scale 0.08–1, ratio 3/4–4/3) + RandomHorizontalFlip, evaluation Resize((224, 224)), both then
normalised with ImageNet statistics. Frames are cached with their aspect ratio in a padded canvas
with each frame's true (h, w) (`visual_size`, see amst_bench.data.preprocess), so:
  training    one box per frame drawn exactly as RandomResizedCrop.get_params on the frame's true
              size (ten tries, then the centre crop clamped to the ratio range), resampled with
              bilinear `roi_align` over an adaptive sample grid (about one sample per source pixel:
              plain bilinear when enlarging, an area average when shrinking, close to PIL's
              antialiased bilinear); the padding is first overwritten by the frame's edge pixels,
              so sampling at the true border clamps like PIL and never reads padding;
  evaluation  each true region resized to 224×224 with antialiased bilinear interpolation, exactly
              torchvision's Resize((224, 224), antialias=True); one call per distinct frame size
              (one in all for datasets with a single video size).
All of it batched on the device, with no Python work per sample in training. Audio fbank is cached
as float16 and becomes [B, 1, T, F] float32. A budget smaller than the paper's (the smoke profile's
32 px, 4 × 4 pooling) first settles each split once (`InputBudget.settle`), so batches are cut
from small tensors, never from the full-size cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUT_SIZE = 224  # the encoders' input: RandomResizedCrop(224) / Resize((224, 224))
SIZE_KEY = "visual_size"  # the cached true (h, w) of each frame, [N, T, 2]; consumed here
# InputBudget.settle keeps frames at most this many times the output side (short side): training
# crops of at least a quarter of a frame are downscaled to the output, smaller ones upsampled. At 4
# every crop would be downscaled, but the per-batch crop costs 3-4 times as much (see README).
WORKING_SIDE = 2


def random_resized_boxes(
    heights: torch.Tensor,
    widths: torch.Tensor,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """[n, 4] boxes (x1, y1, x2, y2), one per frame of true size heights[i] × widths[i], drawn as
    torchvision's RandomResizedCrop.get_params."""
    device = heights.device
    height = heights.to(torch.float32).unsqueeze(1)
    width = widths.to(torch.float32).unsqueeze(1)
    n = height.shape[0]
    target = height * width * torch.empty(n, tries, device=device).uniform_(*scale)
    log_r = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    found = valid.any(1)
    pick = valid.to(torch.uint8).argmax(1).unsqueeze(1)  # the first valid try
    w, h = w.gather(1, pick).squeeze(1), h.gather(1, pick).squeeze(1)
    height, width = height.squeeze(1), width.squeeze(1)
    # No valid try: torchvision's fallback, the centre crop with the ratio clamped to the range.
    in_ratio = width / height
    fallback_w = torch.where(in_ratio > ratio[1], torch.round(height * ratio[1]), width)
    fallback_h = torch.where(in_ratio < ratio[0], torch.round(width / ratio[0]), height)
    w = torch.where(found, w, fallback_w)
    h = torch.where(found, h, fallback_h)
    top = torch.floor(torch.rand(n, device=device) * (height - h + 1))
    left = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    top = torch.where(found, top, torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack([left, top, left + w, top + h], dim=1)


def fill_padding(frames: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Frames [n, C, H, W] whose padding (beyond each frame's true size, [n, 2] (h, w)) repeats the
    last true row and column, so bilinear sampling at the true border reads only true pixels."""
    n, c, height, width = frames.shape
    if bool((sizes[:, 0] == height).all() and (sizes[:, 1] == width).all()):
        return frames
    sizes = sizes.to(frames.device, torch.long)
    cols = torch.minimum(torch.arange(width, device=frames.device), sizes[:, 1:2] - 1)  # [n, W]
    rows = torch.minimum(torch.arange(height, device=frames.device), sizes[:, 0:1] - 1)  # [n, H]
    frames = frames.gather(3, cols.view(n, 1, 1, width).expand(n, c, height, width))
    return frames.gather(2, rows.view(n, 1, height, 1).expand(n, c, height, width))


def augment_frames(
    frames: torch.Tensor,
    sizes: torch.Tensor,
    size: int = OUTPUT_SIZE,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
) -> torch.Tensor:
    """Per-frame RandomResizedCrop(size, scale, ratio) of each frame's true region + horizontal flip
    with probability `flip`: frames [n, C, H, W] (padded canvas; uint8 becomes float in [0, 1]),
    sizes [n, 2] true (h, w)."""
    n = frames.shape[0]
    sizes = sizes.to(frames.device)
    boxes = random_resized_boxes(sizes[:, 0], sizes[:, 1], scale, ratio)
    index = torch.arange(n, device=frames.device, dtype=boxes.dtype).unsqueeze(1)
    frames = as_float(fill_padding(frames, sizes))
    out = roi_align(
        frames,
        torch.cat([index, boxes.to(frames.dtype)], 1),
        output_size=(size, size),
        spatial_scale=1.0,
        sampling_ratio=0,  # adaptive: ceil(box side / size) samples per output pixel and axis
        aligned=True,
    )
    flipped = torch.rand(n, device=frames.device) < flip
    return torch.where(flipped.view(n, 1, 1, 1), out.flip(-1), out)


def resize_frames(frames: torch.Tensor, sizes: torch.Tensor, size: int = OUTPUT_SIZE) -> torch.Tensor:
    """Each frame's true region resized to size × size (Resize((size, size), antialias=True));
    uint8 frames become float in [0, 1]."""
    n, c = frames.shape[:2]
    sizes = sizes.to(frames.device)

    def resize(region: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            as_float(region), size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )

    distinct, group = torch.unique(sizes, dim=0, return_inverse=True)
    if distinct.shape[0] == 1:  # one video size: a single call, no gathering
        h, w = distinct[0].tolist()
        return resize(frames[:, :, :h, :w])
    out = torch.empty(n, c, size, size, device=frames.device)
    for k, (h, w) in enumerate(distinct.tolist()):
        members = (group == k).nonzero().squeeze(1)
        out[members] = resize(frames[members, :, :h, :w])
    return out


def as_float(frames: torch.Tensor) -> torch.Tensor:
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation, in place on `frames` (always a fresh tensor here: one allocation
    fewer per batch, the same numbers)."""
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    return frames.sub_(mean).div_(std)


def prepare_inputs(
    inputs: dict[str, torch.Tensor], train: bool, size: int = OUTPUT_SIZE, fbank_pool: int = 1
) -> dict[str, torch.Tensor]:
    """Cached tensors → encoder inputs: uint8 frames [B, T, 3, H, W] with their true sizes
    (`visual_size` [B, T, 2]; without it the whole canvas is the frame) → normalised float
    [B, T, 3, size, size] (random crop and flip when training); float16 fbank [B, T, F] → float32
    [B, 1, T/p, F/p] (average-pooled by p = `fbank_pool`, 1 = as the official code); the rest as
    is. `size` and `fbank_pool` are the protocol's `image_size` and `fbank_pool` (a budget: the
    smoke profile shrinks real inputs on the device; the paper profile keeps 224 and 1)."""
    out = dict(inputs)
    sizes = out.pop(SIZE_KEY, None)
    visual = inputs.get("visual")
    if visual is not None and visual.dtype == torch.uint8:
        b, t, c, h, w = visual.shape
        if sizes is None:
            sizes = torch.tensor([h, w], device=visual.device).expand(b, t, 2)
        frames = visual.reshape(b * t, c, h, w)  # uint8 until cropped: a quarter of the bytes
        sizes = sizes.reshape(b * t, 2)
        frames = augment_frames(frames, sizes, size) if train else resize_frames(frames, sizes, size)
        out["visual"] = normalise(frames).reshape(b, t, c, size, size)
    audio = inputs.get("audio")
    if audio is not None and audio.dtype == torch.float16:
        fbank = audio.float().unsqueeze(1)
        out["audio"] = F.avg_pool2d(fbank, fbank_pool) if fbank_pool > 1 else fbank
    return out


def shrink_frames(
    frames: torch.Tensor, sizes: torch.Tensor, short_side: int, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Frames [n, C, H, W] uint8 whose true regions (sizes [n, 2]) are shrunk, aspect kept, to a
    short side of at most `short_side` (antialiased bilinear, rounded back to uint8) in a smaller
    zero-padded canvas, with their new sizes; None when no frame is larger than that."""
    h, w = sizes[:, 0].double(), sizes[:, 1].double()
    scale = (short_side / torch.minimum(h, w)).clamp(max=1.0)
    if bool((scale >= 1.0).all()):
        return None
    new = torch.stack([(h * scale).round(), (w * scale).round()], 1).clamp(min=1).to(sizes.dtype)
    new = torch.where((scale >= 1.0).unsqueeze(1), sizes, new)
    n, c = frames.shape[:2]
    height, width = int(new[:, 0].max()), int(new[:, 1].max())
    out = torch.zeros(n, c, height, width, dtype=torch.uint8, device=frames.device)
    pairs = torch.cat([sizes, new], 1)
    distinct, group = torch.unique(pairs, dim=0, return_inverse=True)
    for k, (sh, sw, nh, nw) in enumerate(distinct.tolist()):
        members = (group == k).nonzero().squeeze(1)
        for part in members.split(chunk):  # a chunk at a time: bounded temporary copies
            region = frames[part, :, :sh, :sw]
            if (nh, nw) != (sh, sw):  # uint8 in and out: torch's fast path, ten times the float one
                region = F.interpolate(
                    region, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
                )
            out[part, :, :nh, :nw] = region
    return out, new


@dataclass(frozen=True)
class InputBudget:
    """The protocol's input budget as a DatasetBundle's `prepare`: called per batch it is
    `prepare_inputs` (crop, resize, pool); `settle` does once per split, on the split's device, the
    part that does not change between epochs, so small budgets never touch full-size tensors per
    batch: fbank average-pooled (exactly as per batch would), and frames whose short side exceeds
    WORKING_SIDE × `image_size` shrunk to it (antialiased bilinear, uint8), from which training
    crops and evaluation resizes are then taken. With the paper's budget (224 px, frames cached at
    a short side of at most 256, pool 1) settling changes nothing."""

    image_size: int = OUTPUT_SIZE
    fbank_pool: int = 1

    def __call__(self, inputs: dict[str, torch.Tensor], train: bool) -> dict[str, torch.Tensor]:
        return prepare_inputs(inputs, train, self.image_size, self.fbank_pool)

    def settle(self, inputs: dict[str, torch.Tensor], chunk: int = 256) -> dict[str, torch.Tensor]:
        out = dict(inputs)
        audio = inputs.get("audio")
        if audio is not None and audio.dtype == torch.float16 and self.fbank_pool > 1:
            out["audio"] = torch.cat(
                [F.avg_pool2d(part.float().unsqueeze(1), self.fbank_pool) for part in audio.split(chunk)]
            )
        visual, sizes = inputs.get("visual"), inputs.get(SIZE_KEY)
        if visual is not None and visual.dtype == torch.uint8:
            b, t, c, h, w = visual.shape
            if sizes is None:
                sizes = torch.tensor([h, w], device=visual.device).expand(b, t, 2)
            shrunk = shrink_frames(
                visual.reshape(b * t, c, h, w), sizes.reshape(b * t, 2), WORKING_SIDE * self.image_size, chunk
            )
            if shrunk is not None:
                frames, new_sizes = shrunk
                out["visual"] = frames.reshape(b, t, c, *frames.shape[-2:])
                out[SIZE_KEY] = new_sizes.reshape(b, t, 2)
        return out


def input_preparer(image_size: int, fbank_pool: int) -> InputBudget:
    """`prepare_inputs` with the protocol's input budget bound (what a DatasetBundle carries)."""
    return InputBudget(image_size, fbank_pool)
