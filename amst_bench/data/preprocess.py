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
file systems); here the names are sorted. The official transforms see the original frame
(training RandomResizedCrop(224), evaluation Resize((224, 224))), so frames are cached with their
aspect ratio, not squashed, only shrunk (PIL bilinear, antialiased) until the short side is at
most `short_side` = 256 and the long side at most `long_side` = 512. Why 256: the usual ImageNet
scale for 224 crops, so evaluation still downscales and training crops covering more than about
half the frame (58% at 4:3, 43% at 16:9) are still downscaled as from the original; smaller crops
are upsampled from 256 px rather than from the original 360–720 px, a small loss of sharpness
traded for memory. The long-side cap bounds the canvas for panoramas and screenshots (MVSA). Both
caps are settings, so they enter the cache key. `pad_frames` puts a dataset's frames into one
uint8 canvas (largest stored height × width) and keeps each frame's true (h, w): batches stay
plain tensor indexing, and amst_bench.data.augment only ever reads each frame's true region.

Cache per frame (uint8 RGB): before, 224×224 squashed = 150,528 bytes; now the canvas, e.g.
256×341 (4:3, CREMA-D) = 261,888 bytes (1.7×), 256×455 (16:9) = 349,440 bytes (2.3×); a dataset
mixing portrait and landscape images (MVSA) pays a square canvas, at most 512×512 = 786,432 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amst_bench.errors import UserError

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
    short_side: int = 256  # frames are shrunk (aspect kept) to at most this short side…
    long_side: int = 512  # …and this long side; never enlarged


def read_waveform(path: Path) -> tuple[torch.Tensor, int]:
    """[1, samples] float32 waveform (first channel) and its sample rate."""
    try:
        import soundfile  # only here: nothing else (synthetic data, the GPU bench) needs it
    except ImportError:
        raise UserError(f"{path}: reading audio files needs the soundfile package "
                        "(pip install soundfile), which is not installed here") from None

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
    window = int(rate * 25.0 * 0.001)  # kaldi.fbank: frame_length 25 ms; a clip needs one whole window
    if waveform.shape[1] < window:
        raise DecodeError(
            f"{path}: too short for one 25 ms fbank window ({waveform.shape[1]} samples at {rate} Hz, "
            f"need {window})"
        )
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


def capped_size(width: int, height: int, settings: VisualSettings) -> tuple[int, int]:
    """(width, height) shrunk, aspect ratio kept, to the settings' short- and long-side caps."""
    scale = min(1.0, settings.short_side / min(width, height), settings.long_side / max(width, height))
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_image(path: Path, settings: VisualSettings = VisualSettings()) -> torch.Tensor:
    """[3, h, w] uint8 with the image's aspect ratio, shrunk to the caps (PIL bilinear)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            size = capped_size(*rgb.size, settings)
            if size != rgb.size:
                rgb = rgb.resize(size, Image.BILINEAR)
    except Exception as exc:
        raise DecodeError(f"{path}: unreadable image ({exc})") from None
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def visual_frames(source: Path, settings: VisualSettings = VisualSettings()) -> list[torch.Tensor]:
    """The picked frames of a folder, each [3, h, w] uint8 (sizes may differ); a single image file
    gives one (MVSA has one image per sample). `pad_frames` batches them."""
    if source.is_dir():
        files = list_frames(source)
        if not files:
            raise DecodeError(f"{source}: no frame images in folder")
        picked = [files[i] for i in frame_indices(len(files), settings.frames)]
    elif source.is_file():
        picked = [source]
    else:
        raise DecodeError(f"{source}: missing")
    return [load_image(p, settings) for p in picked]


def pad_frames(samples: list[list[torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each sample's frames padded (zeros, bottom and right) into one canvas shared by all samples:
    per sample a [T, 3, H, W] uint8 tensor and its frames' true sizes, [T, 2] int32 (h, w)."""
    height = max(f.shape[1] for frames in samples for f in frames)
    width = max(f.shape[2] for frames in samples for f in frames)
    padded, sizes = [], []
    for frames in samples:
        canvas = torch.zeros(len(frames), 3, height, width, dtype=torch.uint8)
        for canvas_frame, f in zip(canvas, frames, strict=True):
            canvas_frame[:, : f.shape[1], : f.shape[2]] = f
        padded.append(canvas)
        sizes.append(torch.tensor([tuple(f.shape[1:]) for f in frames], dtype=torch.int32))
    return padded, sizes
