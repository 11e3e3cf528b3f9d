"""`amst-bench data frames`: video clips -> the frame folders the CREMA-D / AVE / IEMOCAP / UR-FUNNY
adapters read (`<DEST>/<clip>/<frame number:05d>.jpg`), by the AMST frame script's rule, with PyAV.

The rule (`code/data/scripts/video_preprocessing.py`, OpenCV): FPS = int(the video's frame rate)
(29 at 29.97 fps), interval = int(FPS / K); decoded frame n is kept when n mod FPS < interval · K
and (n mod FPS) mod interval = 0; frames are read while n < the container's frame count; each is
saved as JPEG named by its frame number. K = 1 keeps frames 0, FPS, 2·FPS, …; K = 2 (IEMOCAP) also
the one half a "second" later. The frame rate and count are what OpenCV's FFmpeg backend reports
(opencv-python 4.11 in the AMST requirements): FFmpeg's av_guess_frame_rate (PyAV's guessed_rate;
a constant-rate file's r_frame_rate) and the stream's frame count, else duration × rate rounded.
Deviation: JPEGs are encoded by Pillow (quality 95, OpenCV's default) instead
of OpenCV, so the kept frames are the same but their bytes differ. Each clip's folder is written
into a temporary folder and renamed into place, so an interrupted extraction leaves no partial
folder, and clips whose folder exists are skipped (a rerun resumes). A video that cannot be
extracted (unreadable, no video stream, too low a frame rate, no frame decoded) is recorded with its
reason and the rest go on; with workers > 1 clips are extracted in that many processes.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from amst_bench.errors import UserError

VIDEO_EXTENSIONS = (".flv", ".mp4", ".avi", ".mkv", ".mov", ".webm")
JPEG_QUALITY = 95  # cv2.imencode's default


@dataclass(frozen=True)
class FrameRule:
    """Which decoded frames the AMST script keeps, for one video."""

    fps: int  # int(frame rate), as the script truncates OpenCV's CAP_PROP_FPS
    per_second: int  # K

    @property
    def interval(self) -> int:
        return self.fps // self.per_second

    def keeps(self, n: int) -> bool:
        phase = n % self.fps
        return phase < self.interval * self.per_second and phase % self.interval == 0


@dataclass(frozen=True)
class Extracted:
    clips: int  # clips extracted now
    skipped: int  # clips whose folder existed already
    frames: int  # frames written now
    failures: tuple[tuple[Path, str], ...] = ()  # (video, one-line reason), sorted by path


def require_av() -> None:
    if importlib.util.find_spec("av") is None:
        raise UserError("data frames: PyAV is not installed; install amst-bench[frames]")


def find_videos(src: Path, extensions: tuple[str, ...]) -> list[Path]:
    if not src.is_dir():
        raise UserError(f"SRC {src}: not a folder of videos")
    videos = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in extensions)
    if not videos:
        raise UserError(f"SRC {src}: no video files ({', '.join(extensions)})")
    return videos


def clip_id(video: Path) -> str:
    """The script's sample name: the file name up to its first dot."""
    return video.name.split(".")[0]


def kept_frames(video: Path, per_second: int) -> Iterator[tuple[int, object]]:
    """(frame number, PIL image) for each frame the rule keeps."""
    import av

    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise UserError(f"{video}: no video stream")
            stream = container.streams.video[0]
            rate = stream.guessed_rate or stream.base_rate or stream.average_rate  # OpenCV 4's CAP_PROP_FPS
            fps = int(Fraction(rate)) if rate else 0
            if fps < per_second or fps < 1:
                raise UserError(f"{video}: frame rate {float(rate or 0):.3f} fps is below {per_second} "
                                "kept frame(s) per second")
            rule = FrameRule(fps, per_second)
            limit = stream.frames or _estimated_frames(container, stream, rate)
            for n, frame in enumerate(container.decode(stream)):
                if limit and n >= limit:
                    break
                if rule.keeps(n):
                    yield n, frame.to_image()
    except av.error.FFmpegError as exc:
        raise UserError(f"{video}: not a readable video ({exc.__class__.__name__}: {exc})") from None


def _estimated_frames(container, stream, rate) -> int:
    """OpenCV's frame count where the container stores none: duration × fps, rounded (the
    container's duration, else the stream's)."""
    if container.duration:
        seconds = container.duration / 1_000_000
    elif stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    else:
        return 0
    return int(seconds * float(rate) + 0.5)


def extract(
    src: Path,
    dest: Path,
    per_second: int = 1,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> Extracted:
    """Extract every video of `src` into `dest/<clip>/`; clips already there are kept, and a
    video that fails is recorded in `failures` while the others go on."""
    if per_second < 1:
        raise UserError(f"--per-second: expected a positive integer, got {per_second}")
    if workers < 1:
        raise UserError(f"--workers: expected a positive integer, got {workers}")
    require_av()
    videos = find_videos(Path(src), extensions)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UserError(f"DEST {dest}: not a folder")
    dest.mkdir(parents=True, exist_ok=True)
    todo = [(video, dest / clip_id(video)) for video in videos]
    todo = [(video, target) for video, target in todo if not target.is_dir()]
    skipped = len(videos) - len(todo)
    done = skipped
    if progress:
        progress(done, len(videos))
    results: list[tuple[Path, int, str | None]] = []
    if workers == 1 or len(todo) <= 1:
        for video, target in todo:
            results.append((video, *_extract_one(video, target, per_second)))
            done += 1
            if progress:
                progress(done, len(videos))
    else:
        # spawn: fresh interpreters, no locks inherited from the parent's threads (the progress bar)
        pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=multiprocessing.get_context("spawn"))
        try:
            pending = {pool.submit(_extract_one, video, target, per_second): video for video, target in todo}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    results.append((pending.pop(future), *future.result()))
                    done += 1
                    if progress:
                        progress(done, len(videos))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    failures = tuple(sorted((video, reason) for video, _, reason in results if reason is not None))
    clips = sum(1 for _, _, reason in results if reason is None)
    frames = sum(count for _, count, _ in results)
    return Extracted(clips, skipped, frames, failures)


def _extract_one(video: Path, target: Path, per_second: int) -> tuple[int, str | None]:
    """(frames written, None), or (0, why) when the video cannot be extracted."""
    try:
        return _extract_clip(video, target, per_second), None
    except UserError as exc:
        reason = " ".join(str(exc).split())
        return 0, reason.removeprefix(f"{video}: ")


def _extract_clip(video: Path, target: Path, per_second: int) -> int:
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        count = 0
        for n, image in kept_frames(video, per_second):
            image.save(scratch / f"{n:05d}.jpg", quality=JPEG_QUALITY)
            count += 1
        if not count:
            raise UserError(f"{video}: no frame decoded")
        os.replace(scratch, target)
        return count
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
