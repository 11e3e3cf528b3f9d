"""Cache-like inputs for the data-path benchmarks: what a batch or a split of a CREMA-D-sized
dataset holds (uint8 frames in a padded canvas with true sizes, fp16 fbank), random but seeded."""

from __future__ import annotations

import torch

PAPER_CANVAS = (256, 341)  # a 4:3 frame cached at a short side of 256 (CREMA-D)


def cached_inputs(clips: int, canvas: tuple[int, int] = PAPER_CANVAS, fbank_frames: int = 1024):
    gen = torch.Generator().manual_seed(0)
    height, width = canvas
    return {
        "audio": torch.randn(clips, fbank_frames, 128, generator=gen).half(),
        "visual": torch.randint(0, 256, (clips, 3, 3, height, width), generator=gen, dtype=torch.uint8),
        "visual_size": torch.tensor([height, width], dtype=torch.int32).expand(clips, 3, 2).clone(),
    }
