"""Decoding raw files into compact tensors, as the official AMST code prepares its inputs.

Audio (`code/data/scripts/extract_fbank.py`, `wav2fbank`): the waveform (first channel) is
de-meaned, then `torchaudio.compliance.kaldi.fbank(htk_compat=True, sample_frequency=<the file's
rate>, use_energy=False, window_type='hanning', num_mel_bins=128, dither=0.0, frame_shift=10)`,
zero-padded or cut to 1024 frames: a [1024, 128] array, not normalised. Files are read with
soundfile (torchaudio.load needs torchcodec); a file that cannot be read is an error naming it
(the official script silently writes a constant array instead).

Visual (`code/dataset/dataset.py`, `_load_visual_features`): from a folder holding one frame per
second, `pick` frames at index int(n / pick) * i, i = 0..pick-1 (all index 0 when n < pick, as
the code). The official code lists the folder unsorted (`os.listdir`, not reproducible across
file systems); here the names are sorted. Each frame is stored resized to 224×224 as uint8 (the
official evaluation transform `Resize((224, 224))`); augmentation happens later, on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class DecodeError(Exception):
    """A raw file that cannot be turned into a tensor; the message names the file."""


@dataclass(frozen=True)
class AudioSettings:
    num_mel_bins: int = 128
    frame_shift_ms: float = 10.0
    target_frames: int = 1024
    window_type: str = "hanning"


@dataclass(frozen=True)
class VisualSettings:
    frames: int = 3
    size: int = 224


def read_waveform(path: Path) -> tuple[torch.Tensor, int]:
    """[1, samples] float32 waveform (first channel) and its sample rate."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for bad files
        raise DecodeError(f"{path}: unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise DecodeError(f"{path}: audio file has no samples")
    return torch.from_numpy(np.ascontiguousarray(data[:, 0])).unsqueeze(0), int(rate)


def fbank(
    waveform: torch.Tensor, sample_rate: int, settings: AudioSettings = AudioSettings()
) -> torch.Tensor:
    """Kaldi-compatible log mel filterbank, padded/cut to `target_frames`: [frames, mel]."""
    from torchaudio.compliance import kaldi

    features = kaldi.fbank(
        waveform - waveform.mean(),
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type=settings.window_type,
        num_mel_bins=settings.num_mel_bins,
        dither=0.0,
        frame_shift=settings.frame_shift_ms,
    )
    missing = settings.target_frames - features.shape[0]
    if missing > 0:
        features = torch.nn.functional.pad(features, (0, 0, 0, missing))
    return features[: settings.target_frames]


def audio_features(path: Path, settings: AudioSettings = AudioSettings()) -> torch.Tensor:
    waveform, rate = read_waveform(path)
    try:
        return fbank(waveform, rate, settings)
    except Exception as exc:  # e.g. a clip shorter than one window
        raise DecodeError(f"{path}: cannot compute fbank ({exc})") from None


def frame_indices(count: int, pick: int) -> list[int]:
    """The official sampler: index int(count / pick) * i for i in 0..pick-1."""
    step = count // pick
    return [step * i for i in range(pick)]


def list_frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: Path, size: int) -> torch.Tensor:
    """[3, size, size] uint8, resized with bilinear interpolation like torchvision's Resize."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((size, size), Image.BILINEAR)
    except Exception as exc:
        raise DecodeError(f"{path}: unreadable image ({exc})") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def visual_frames(source: Path, settings: VisualSettings = VisualSettings()) -> torch.Tensor:
    """[frames, 3, size, size] uint8 from a folder of frames; a single image file gives
    [1, 3, size, size] (MVSA has one image per sample)."""
    if source.is_dir():
        files = list_frames(source)
        if not files:
            raise DecodeError(f"{source}: no frame images in folder")
        picked = [files[i] for i in frame_indices(len(files), settings.frames)]
    elif source.is_file():
        picked = [source]
    else:
        raise DecodeError(f"{source}: missing")
    return torch.stack([load_image(p, settings.size) for p in picked])
