"""Turning cached compact tensors into model inputs on the device, with training augmentation.

The official code augments each training frame independently with RandomResizedCrop(224) +
RandomHorizontalFlip and normalises with ImageNet statistics (evaluation: Resize(224, 224) +
the same normalisation). Here frames are cached at 224×224 (uint8), so the crop is taken from
that resized frame rather than the original image, and resampled with bilinear `roi_align` (no
antialiasing): per-frame random boxes drawn exactly like RandomResizedCrop.get_params (scale
0.08–1, log-uniform ratio 3/4–4/3, ten tries, then the whole frame), batched on the device, with
no Python work per sample. Audio fbank is cached as float16 and becomes [B, 1, T, F] float32.
"""

from __future__ import annotations

import math

import torch
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def random_resized_boxes(
    n: int,
    height: int,
    width: int,
    device: torch.device,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    tries: int = 10,
) -> torch.Tensor:
    """[n, 4] boxes (x1, y1, x2, y2) sampled as torchvision's RandomResizedCrop.get_params."""
    area = height * width
    target = area * torch.empty(n, tries, device=device).uniform_(*scale)
    log_r = torch.empty(n, tries, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(valid.any(1), valid.float().argmax(1), torch.full((n,), -1, device=device))
    rows = torch.arange(n, device=device)
    pick = first.clamp_min(0)
    w = torch.where(first >= 0, w[rows, pick], torch.full((n,), float(width), device=device))
    h = torch.where(first >= 0, h[rows, pick], torch.full((n,), float(height), device=device))
    top = torch.floor(torch.rand(n, device=device) * (height - h + 1))
    left = torch.floor(torch.rand(n, device=device) * (width - w + 1))
    return torch.stack([left, top, left + w, top + h], dim=1)


def augment_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Per-frame random resized crop + horizontal flip of float frames [N, 3, H, W]."""
    n, _, height, width = frames.shape
    boxes = random_resized_boxes(n, height, width, frames.device)
    indexed = torch.cat([torch.arange(n, device=frames.device, dtype=boxes.dtype).unsqueeze(1), boxes], 1)
    out = roi_align(
        frames, indexed, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True
    )
    flip = torch.rand(n, device=frames.device) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(-1), out)


def normalise(frames: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=frames.device).view(1, 3, 1, 1)
    return (frames - mean) / std


def prepare_inputs(inputs: dict[str, torch.Tensor], train: bool) -> dict[str, torch.Tensor]:
    """Cached tensors → encoder inputs: uint8 frames [B, T, 3, H, W] → normalised float (random
    crop and flip when training); float16 fbank [B, T, F] → float32 [B, 1, T, F]; rest as is."""
    out = dict(inputs)
    visual = inputs.get("visual")
    if visual is not None and visual.dtype == torch.uint8:
        b, t, c, h, w = visual.shape
        frames = visual.reshape(b * t, c, h, w).float() / 255.0
        if train:
            frames = augment_frames(frames, h)
        out["visual"] = normalise(frames).reshape(b, t, c, h, w)
    audio = inputs.get("audio")
    if audio is not None and audio.dtype == torch.float16:
        out["audio"] = audio.float().unsqueeze(1)
    return out
