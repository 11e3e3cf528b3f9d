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


AVE_CATEGORIES = ("Church bell", "Male speech, man speaking", "Baby cry, infant cry", "Frying (food)")
AVE_HEADER = "Category&VideoID&Quality&StartTime&EndTime"
AVE_SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
AVE_AMST_FILES = {"train": "my_train_ave.txt", "val": "my_val_ave.txt", "test": "my_test_ave.txt"}


def ave_line(category: str, video: str, start: int = 0, end: int = 10) -> str:
    """One line of AVE's Annotations.txt / trainSet.txt / valSet.txt / testSet.txt."""
    return f"{category}&{video}&good&{start}&{end}"


def write_ave_video(root: Path, video: str, seed: int = 0, frames: int = 10) -> None:
    """WAV/<video>.wav and IMAGE_KEPT_1_PER_SEC/<video>/NNNNN.jpg (1 frame per second)."""
    write_wav(root / "WAV" / f"{video}.wav", freq=200.0 + 50 * (seed % 12), seed=seed)
    write_frames(root / "IMAGE_KEPT_1_PER_SEC" / video, frames, seed=seed)


def make_ave(
    root: Path, videos_per_category: int = 3, frames: int = 10, header: bool = True
) -> dict[str, list[tuple[str, str]]]:
    """The unzipped AVE_Dataset folder after audio and frame extraction: Annotations.txt (with the
    zip's header line unless `header` is False, as in the GitHub copy), trainSet.txt, valSet.txt,
    testSet.txt (official `Category&VideoID&Quality&StartTime&EndTime` lines, no header), WAV/ and
    IMAGE_KEPT_1_PER_SEC/. Per category the first videos are train; the last goes to val or test,
    alternating. Video ids look like YouTube's (11 characters, some starting with '-').
    Returns split → [(video id, category)] in file order."""
    splits: dict[str, list[tuple[str, str]]] = {s: [] for s in AVE_SPLIT_FILES}
    annotations = [AVE_HEADER] if header else []
    lines: dict[str, list[str]] = {s: [] for s in AVE_SPLIT_FILES}
    n = 0
    for c, category in enumerate(AVE_CATEGORIES):
        for k in range(videos_per_category):
            video = f"{'-' if k == 0 else 'a'}{c}v{k}Xq_Z8aB"[:11]
            split = "train" if k < videos_per_category - 1 else ("val" if c % 2 == 0 else "test")
            line = ave_line(category, video, start=k % 3, end=10 - c % 2)
            annotations.append(line)
            lines[split].append(line)
            splits[split].append((video, category))
            write_ave_video(root, video, seed=n, frames=frames)
            n += 1
    (root / "Annotations.txt").write_text("\n".join(annotations) + "\n")
    for split, filename in AVE_SPLIT_FILES.items():
        (root / filename).write_text("".join(f"{line}\n" for line in lines[split]))
    return splits


def write_ave_amst_split_files(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> None:
    """The AMST repository's AVE split files (code/data/AVE/my_*_ave.txt): `<id>.mp4 <Category>`."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, filename in AVE_AMST_FILES.items():
        lines = "".join(f"{video}.mp4 {category}\n" for video, category in splits[split])
        (folder / filename).write_text(lines)
