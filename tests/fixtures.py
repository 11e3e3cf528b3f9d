"""Tiny datasets written in each dataset's real on-disk layout: real WAV files, real JPEG frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

CREMAD_CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def write_wav(
    path: Path, seconds: float = 0.6, rate: int = 16000, freq: float = 440.0, seed: int = 0
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.05, t.shape)
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32), rate)


def write_jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


def write_frames(folder: Path, count: int, seed: int = 0) -> None:
    for i in range(count):
        write_jpeg(folder / f"{i + 1:05d}.jpg", seed=seed * 100 + i)


def make_cremad(root: Path, clips_per_class: int = 3, frames: int = 4) -> list[str]:
    """AudioWAV/<clip>.wav and IMAGE_KEPT_1_PER_SEC/<clip>/NNNNN.jpg for a few clips per emotion,
    spread over several actors. Returns the clip names."""
    clips = []
    for c, code in enumerate(CREMAD_CODES):
        for k in range(clips_per_class):
            actor = 1001 + (c * clips_per_class + k) % 9
            clip = f"{actor}_{['DFA', 'IEO', 'ITS'][k % 3]}_{code}_XX"
            write_wav(root / "AudioWAV" / f"{clip}.wav", freq=200.0 + 100 * c, seed=len(clips))
            write_frames(root / "IMAGE_KEPT_1_PER_SEC" / clip, frames, seed=len(clips))
            clips.append(clip)
    return clips
