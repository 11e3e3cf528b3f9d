"""`amst-bench data frames`: the AMST frame script's rule and layout, on tiny videos made here with
PyAV whose frame n shows n in binary (eight black or white blocks), so each kept JPEG says which
frame it was."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from amst_bench.data.frames import FrameRule
from tests.helpers import cli, error_line

av = pytest.importorskip("av", reason="PyAV (extra [frames], in the test extra) is not installed")


def make_video(path: Path, rate, frames: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for n in range(frames):
            image = np.zeros((32, 32, 3), np.uint8)
            for bit in range(8):  # block `bit` (8 x 16 pixels) is white when that bit of n is set
                image[16 * (bit // 4) : 16 * (bit // 4 + 1), 8 * (bit % 4) : 8 * (bit % 4 + 1)] = 255 * (
                    n >> bit & 1
                )
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def official_keeps(fps: int, per_second: int, frames: int) -> list[int]:
    """The AMST script's loop (video2frame_update), transcribed: which frame numbers it saves."""
    kept, frame_id = [], 0
    interval = int(fps / per_second)
    for count in range(frames):
        if count % fps == 0:
            frame_id = 0
        if frame_id < interval * per_second and frame_id % interval == 0:
            kept.append(count)
        frame_id += 1
    return kept


@pytest.mark.parametrize("per_second", [1, 2, 3])
def test_the_rule_is_the_official_loop(per_second):
    for fps in range(per_second, 61):
        rule = FrameRule(fps, per_second)
        assert [n for n in range(400) if rule.keeps(n)] == official_keeps(fps, per_second, 400), fps


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("videos")
    make_video(src / "1001_DFA_ANG_XX.mp4", 25, 55)  # 2.2 s at 25 fps
    make_video(src / "clip.b.mp4", Fraction(30000, 1001), 63)  # 29.97 fps: FPS = 29, not 30
    (src / "notes.txt").write_text("not a video")
    return src


def _kept(folder: Path) -> dict[str, list[int]]:
    """Clip -> frame numbers in the file names; asserts each JPEG shows that frame's number."""
    out = {}
    for clip in sorted(p for p in folder.iterdir() if p.is_dir()):
        numbers = []
        for jpg in sorted(clip.glob("*.jpg")):
            n = int(jpg.stem)
            pixels = np.asarray(Image.open(jpg).convert("L"), dtype=float)
            blocks = [
                pixels[16 * (b // 4) + 4 : 16 * (b // 4) + 12, 8 * (b % 4) + 2 : 8 * (b % 4) + 6]
                for b in range(8)
            ]
            assert sum((block.mean() > 128) << b for b, block in enumerate(blocks)) == n, jpg
            numbers.append(n)
        out[clip.name] = numbers
    return out


def test_frames_kept_once_per_second_and_twice(videos, tmp_path, capsys):
    assert cli("data", "frames", str(videos), str(tmp_path / "one")) == 0
    assert "6 frame(s) from 2 clip(s)" in capsys.readouterr().out
    # 3 frames for the 2.2 s clip (ffmpeg's fps=1 gives 2), and every 29th frame at 29.97 fps
    assert _kept(tmp_path / "one") == {"1001_DFA_ANG_XX": [0, 25, 50], "clip": [0, 29, 58]}
    assert cli("data", "frames", str(videos), str(tmp_path / "two"), "--per-second", "2") == 0
    assert _kept(tmp_path / "two") == {"1001_DFA_ANG_XX": [0, 12, 25, 37, 50], "clip": [0, 14, 29, 43, 58]}


def test_a_rerun_keeps_extracted_clips_and_fills_in_the_rest(videos, tmp_path, capsys):
    dest = tmp_path / "IMAGE_KEPT_1_PER_SEC"
    (dest / "clip").mkdir(parents=True)  # as if extracted before
    assert cli("data", "frames", str(videos), str(dest), "--ext", "mp4") == 0
    assert "3 frame(s) from 1 clip(s); 1 there already" in capsys.readouterr().out
    assert _kept(dest) == {"1001_DFA_ANG_XX": [0, 25, 50], "clip": []}


def test_bad_sources_are_one_line_and_leave_no_partial_folder(videos, tmp_path, capsys):
    assert error_line(capsys, "data", "frames", str(tmp_path / "nope"), str(tmp_path / "out")) == (
        f"amst-bench: error: SRC {tmp_path / 'nope'}: not a folder of videos"
    )
    line = error_line(capsys, "data", "frames", str(videos), str(tmp_path / "out"), "--ext", ".flv")
    assert line == f"amst-bench: error: SRC {videos}: no video files (.flv)"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    capsys.readouterr()
    assert cli("data", "frames", str(broken), str(tmp_path / "out")) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"amst-bench: error: {broken / 'bad.mp4'}: not a readable video")
    assert list((tmp_path / "out").iterdir()) == []  # no half-written clip folder
    line = error_line(capsys, "data", "frames", str(videos), str(tmp_path / "out"), "--per-second", "0")
    assert line == "amst-bench: error: --per-second: expected a positive integer, got 0"
    line = error_line(capsys, "data", "frames", str(videos), str(tmp_path / "out"), "--workers", "0")
    assert line == "amst-bench: error: --workers: expected a positive integer, got 0"


@pytest.fixture(scope="module")
def mixed(videos, tmp_path_factory) -> Path:
    """The two good videos and one file of random bytes named .mp4."""
    src = tmp_path_factory.mktemp("mixed")
    for video in sorted(videos.glob("*.mp4")):
        (src / video.name).write_bytes(video.read_bytes())
    (src / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    return src


def test_an_unreadable_video_is_reported_and_the_rest_extracted(mixed, tmp_path, capsys):
    dest = tmp_path / "out"
    capsys.readouterr()
    assert cli("data", "frames", str(mixed), str(dest)) == 1
    out = capsys.readouterr()
    [line] = out.err.strip().splitlines()
    assert line.startswith(f"amst-bench: error: {mixed / 'broken.mp4'}: not a readable video (")
    assert "6 frame(s) from 2 clip(s); 0 there already; 1 failed" in out.out
    assert _kept(dest) == {"1001_DFA_ANG_XX": [0, 25, 50], "clip": [0, 29, 58]}
    assert sorted(p.name for p in dest.iterdir()) == ["1001_DFA_ANG_XX", "clip"]  # nothing partial
    assert cli("data", "frames", str(mixed), str(dest)) == 1  # a rerun skips the good ones
    out = capsys.readouterr()
    assert "0 frame(s) from 0 clip(s); 2 there already; 1 failed" in out.out
    assert len(out.err.strip().splitlines()) == 1


def test_workers_write_the_same_files_as_one_process(mixed, tmp_path, capsys):
    assert cli("data", "frames", str(mixed), str(tmp_path / "one")) == 1
    one = capsys.readouterr()
    assert cli("data", "frames", str(mixed), str(tmp_path / "two"), "--workers", "2") == 1
    two = capsys.readouterr()
    assert two.err == one.err and two.out.rsplit(": ", 1)[1] == one.out.rsplit(": ", 1)[1]

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(tmp_path / "two") == files(tmp_path / "one") != {}


def test_without_pyav_it_says_which_extra(videos, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a)
    )
    line = error_line(capsys, "data", "frames", str(videos), str(tmp_path / "out"))
    assert line == "amst-bench: error: data frames: PyAV is not installed; install amst-bench[frames]"
