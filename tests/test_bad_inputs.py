"""The bad-input catalogue (tests/BAD_INPUTS.md): every bad input is either handled correctly or
refused with one clear line naming the file (and line), the field or the flag, and what was
expected; a non-zero exit, no traceback, nothing written. One test per row of the catalogue."""

from __future__ import annotations

import dataclasses
import errno
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from amst_bench import atomic
from amst_bench.data.preprocess import audio_features, fbank, load_image, read_waveform, visual_frames
from amst_bench.data.refs import DataLocations, DatasetRef, make_adapter
from amst_bench.protocol import get_profile
from tests.fixtures import make_cremad, write_jpeg, write_wav
from tests.helpers import cli

SMOKE = get_profile("smoke")
EMOTION = {"ANG": "Anger", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad"}


# ---------------------------------------------------------------------------------------------- helpers


def run(capsys, *args: str) -> tuple[int, str, str]:
    """`amst-bench ARGS` in-process: exit code, stdout, stderr; never a traceback."""
    code = cli(*args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error(capsys, *args: str, code: int = 2) -> str:
    """The one `amst-bench: error:` line a bad command prints, last; before it only the one-line
    progress reports of runs the command finished or found done."""
    got, out, err = run(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, (got, out, err)
    errors = [line for line in lines if line.startswith("amst-bench: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert not [line for line in lines[:-1] if line.startswith("amst-bench:")], err
    return errors[0]


def grid(tmp_path: Path, *extra: str, methods: str = "naive", seeds: str = "0") -> list[str]:
    """A one-epoch smoke grid on synthetic data, everything written under tmp_path."""
    return [
        "run", "--methods", methods, "--datasets", "synthetic", "--profile", "smoke", "--seeds", seeds,
        "--set", "epochs=1", "--results-dir", str(tmp_path / "r"), "--leaderboard-dir", str(tmp_path / "b"),
        "--cache-dir", str(tmp_path / "c"), *extra,
    ]  # fmt: skip


def nothing_written(tmp_path: Path) -> bool:
    return not any((tmp_path / d).exists() for d in ("r", "b", "c"))


def cremad(tmp_path: Path) -> tuple[Path, list[str]]:
    """A small CREMA-D folder (12 clips, 3 frames each)."""
    root = tmp_path / "cremad"
    return root, make_cremad(root, clips_per_class=2, frames=3)


def check(capsys, root: Path, tmp_path: Path, *extra: str, dataset: str = "cremad") -> tuple[int, str, str]:
    """`amst-bench data check DATASET:ROOT`: exit code, stdout (one line per problem), stderr."""
    return run(
        capsys, "data", "check", f"{dataset}:{root}", "--profile", "smoke",
        "--cache-dir", str(tmp_path / "c"), *extra,
    )  # fmt: skip


def refused(capsys, root: Path, tmp_path: Path, message: str, *extra: str, dataset: str = "cremad") -> str:
    """`data check` lists the problem (exit 1) and a run refuses the dataset in one line naming it
    (exit 2); no cache and no result are written."""
    code, out, err = check(capsys, root, tmp_path, *extra, dataset=dataset)
    assert code == 1, (out, err)
    [line] = [p for p in out.splitlines() if message in p]
    assert err.strip().endswith("problem(s)")
    error = one_error(
        capsys, "run", "--methods", "naive", "--datasets", f"{dataset}:{root}", "--profile", "smoke",
        "--seeds", "0", "--set", "epochs=1", "--results-dir", str(tmp_path / "r"),
        "--leaderboard-dir", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "c"), *extra,
    )  # fmt: skip
    assert message in error and "problem(s)" in error
    assert not list((tmp_path / "c").rglob("*.pt")) and not list((tmp_path / "r").rglob("*.json"))
    return line


def handled(capsys, root: Path, tmp_path: Path, *extra: str, dataset: str = "cremad") -> None:
    code, out, err = check(capsys, root, tmp_path, *extra, dataset=dataset)
    assert code == 0 and "no problems found" in out, (out, err)


def cremad_adapter(root: Path, tmp_path: Path, **options: str):
    locations = DataLocations(cache_dir=tmp_path / "c", options={"cremad": options})
    return make_adapter(f"cremad:{root}", locations)


# ---------------------------------------------------------------------------------------------- CLI

CLI_CASES = {
    "unknown-method": (["--methods", "nope"], "--methods: unknown method 'nope'; known: "),
    "unknown-dataset": (["--datasets", "nope"], "--datasets: unknown dataset 'nope'; known: "),
    "unknown-profile": (["--profile", "huge"], "--profile: unknown profile 'huge'; expected one of paper"),
    "unknown-protocol-field": (["--set", "epoch=3"], "--set epoch: not a protocol field (epochs,"),
    "unknown-method-option": (["--set", "amst-alt.skipp.audio=3"], "amst-alt has no option 'skipp'"),
    "unknown-dataset-option": (["--set", "cremad.splt=speaker"], "cremad has no option 'splt'"),
    "bad-option-of-a-method-not-run": (
        ["--set", "amst-alt.skip.audio=0"],
        "--set amst-alt.skip.audio: expected a value ≥ 1, got '0'",
    ),
    "bad-dataset-option-value": (["--set", "cremad.split=sideways"], "expected one of random, speaker"),
    "bad-protocol-value": (["--set", "epochs=many"], "--set epochs: expected an integer, got 'many'"),
    "set-without-equals": (["--set", "epochs"], "--set 'epochs': expected KEY=VALUE"),
    "set-empty-key": (["--set", "=5"], "--set '=5': expected KEY=VALUE"),
    "set-empty-value": (["--set", "epochs="], "--set 'epochs=': expected KEY=VALUE"),
    "set-whole-mapping": (
        ["--set", "amst-alt.skip=3"],
        "--set amst-alt.skip: 'skip' is a mapping; set one entry",
    ),
    "set-a-rule": (["--set", "optimizer.momentum=0.5"], "optimizer does not let you override 'momentum'"),
    "set-seeds": (["--set", "seeds=1"], "the protocol does not let you override 'seeds'"),
    "set-dataclass-itself": (["--set", "optimizer=1"], "--set optimizer: name one of its fields (lr,"),
    "seeds-not-integers": (["--seeds", "a,b"], "--seeds: expected a comma list of non-negative integers"),
    "seeds-negative": (["--seeds", "-1"], "--seeds: expected a comma list of non-negative integers, got '-"),
    "seeds-repeated": (["--seeds", "1,1"], "--seeds: repeated seed in '1,1'"),
    "seeds-empty": (["--seeds", ""], "--seeds: expected a comma list of non-negative integers, got ''"),
    "dataset-twice": (["--datasets", "cremad:/a,cremad:/b"], "dataset 'cremad' named twice with different"),
    "dataset-folder-missing": (
        ["--datasets", "cremad:/no/such/folder"],
        "dataset 'cremad': /no/such/folder is not a folder",
    ),
    "dataset-without-folder": (["--datasets", "cremad"], "dataset 'cremad': no folder given; use --datasets"),
    "unknown-flag": (["--no-such-flag"], "No such option: --no-such-flag"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_mistake_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, case):
    monkeypatch.delenv("AMST_BENCH_DATA", raising=False)
    args, message = CLI_CASES[case]
    line = one_error(capsys, *grid(tmp_path), *args)
    assert message in line, line
    assert nothing_written(tmp_path)


def test_ablation_refuses_method_options_it_would_ignore(tmp_path, capsys):
    args = ["ablation", "--profile", "smoke", "--results-dir", str(tmp_path / "r"), "--leaderboard-dir",
            str(tmp_path / "b"), "--set", "amst-alt.skipped_forward=none"]  # fmt: skip
    line = one_error(capsys, *args)
    assert "--set amst-alt.skipped_forward: this grid runs fixed method variants" in line
    assert nothing_written(tmp_path)


DATA_COMMAND_CASES = {
    "two-datasets": (["cremad,ave"], "DATASET: expected one dataset, got 'cremad,ave'"),
    "generated-dataset": (["synthetic"], "dataset 'synthetic' is generated in memory: nothing to check"),
    "unknown-dataset": (["nope"], "unknown dataset 'nope'; known: "),
    "no-folder": (["cremad"], "dataset 'cremad': no folder given"),
}


@pytest.mark.parametrize("case", sorted(DATA_COMMAND_CASES))
def test_data_command_mistake_is_one_line(tmp_path, capsys, monkeypatch, case):
    monkeypatch.delenv("AMST_BENCH_DATA", raising=False)
    args, message = DATA_COMMAND_CASES[case]
    assert message in one_error(capsys, "data", "check", *args, "--cache-dir", str(tmp_path / "c"))
    assert nothing_written(tmp_path)


def test_a_dataset_path_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    args = ["data", "check", f"cremad:{tmp_path / 'file'}", "--cache-dir", str(tmp_path / "c")]
    line = one_error(capsys, *args)
    assert f"{tmp_path / 'file'} is not a folder (expected AudioWAV/<clip>.wav" in line
    assert nothing_written(tmp_path)


def test_a_text_dataset_without_text_model_is_one_line(tmp_path, capsys):
    root = tmp_path / "d"
    write_manifest(root, {"t0": "cat", "t1": "cat", "t2": "dog", "t3": "dog"}, text=True)
    line = one_error(capsys, "data", "check", f"manifest:{root}", "--cache-dir", str(tmp_path / "c"))
    assert "--text-model (not given): text tokenisation needs a local folder" in line
    assert nothing_written(tmp_path)


def test_leaderboard_of_a_missing_results_dir_is_one_line(tmp_path, capsys):
    line = one_error(capsys, "leaderboard", "--results-dir", str(tmp_path / "r"), "--leaderboard-dir",
                     str(tmp_path / "b"))  # fmt: skip
    assert f"--results-dir {tmp_path / 'r'}: no such folder (run `amst-bench run` first)" in line
    assert nothing_written(tmp_path)


def test_a_results_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "r").write_text("not a folder")
    line = one_error(capsys, *grid(tmp_path))
    assert f"--results-dir {tmp_path / 'r'}: not writable (Not a directory)" in line
    assert (tmp_path / "r").read_text() == "not a folder" and not (tmp_path / "b").exists()


def test_a_results_dir_on_a_read_only_place_is_one_line(tmp_path, capsys):
    """/proc refuses new folders even to root."""
    line = one_error(capsys, *grid(tmp_path), "--results-dir", "/proc/amst-bench-results")
    assert "--results-dir /proc/amst-bench-results: not writable (" in line
    assert not Path("/proc/amst-bench-results").exists()


def test_an_unwritable_results_dir_is_one_line(tmp_path, capsys):
    results = tmp_path / "r"
    results.mkdir()
    results.chmod(0o500)
    try:
        probe = results / "probe"
        try:
            probe.write_text("x")
        except PermissionError:
            pass
        else:
            probe.unlink()
            pytest.skip("running as root: chmod 0o500 does not block writes (the /proc case covers it)")
        line = one_error(capsys, *grid(tmp_path))
        assert f"--results-dir {results}: not writable (Permission denied)" in line
    finally:
        results.chmod(0o700)


def test_a_leaderboard_dir_that_is_a_file_is_one_line_and_keeps_the_results(tmp_path, capsys):
    (tmp_path / "b").write_text("not a folder")
    line = one_error(capsys, *grid(tmp_path))
    assert f"--leaderboard-dir {tmp_path / 'b'}: not writable" in line
    assert len(list((tmp_path / "r" / "runs").glob("*.json"))) == 1  # the run itself is kept


@pytest.mark.parametrize("folder", ["runs", "checkpoints"])
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_earlier_results(
    tmp_path, capsys, monkeypatch, folder
):
    assert run(capsys, *grid(tmp_path), "--set", "epochs=2")[0] == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r" / "runs").iterdir()}

    def disk_fills(path, data, fh):  # atomic_write_bytes's write, as a disk that fills half-way
        if path.parent.name == folder:
            fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_kill_if_fault_point", disk_fills)
    line = one_error(capsys, *grid(tmp_path, seeds="0,1"), "--set", "epochs=2", code=1)
    [path] = [p for p in line.split() if f"/{folder}/" in p]
    assert line.endswith(": No space left on device") and "seed1" in path, line
    # the earlier result is intact, nothing half-written is left, no result for the failed run
    assert {p.name: p.read_bytes() for p in (tmp_path / "r" / "runs").iterdir()} == before
    assert not [p for p in (tmp_path / "r").rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


# ---------------------------------------------------------------------------------------------- audio


def test_a_missing_wav_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    (root / "AudioWAV" / f"{clips[0]}.wav").unlink()  # its frames remain: the clip must not vanish
    line = refused(capsys, root, tmp_path, f"{clips[0]}.wav: missing")
    assert f"audio of {clips[0]}" in line


def test_a_zero_length_wav_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    (root / "AudioWAV" / f"{clips[0]}.wav").write_bytes(b"")
    refused(capsys, root, tmp_path, f"{clips[0]}.wav: unreadable audio")


def test_a_wav_without_samples_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    soundfile.write(root / "AudioWAV" / f"{clips[0]}.wav", np.zeros(0, np.float32), 16000)
    refused(capsys, root, tmp_path, f"{clips[0]}.wav: audio file has no samples")


def test_a_wav_shorter_than_one_window_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    soundfile.write(root / "AudioWAV" / f"{clips[0]}.wav", np.zeros(100, np.float32), 16000)
    refused(
        capsys, root, tmp_path, f"{clips[0]}.wav: too short for one 25 ms fbank window (100 samples at 16000"
    )


def test_a_wav_that_is_really_text_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    (root / "AudioWAV" / f"{clips[0]}.wav").write_text("RIFF? no: these are my notes about the clip\n")
    refused(capsys, root, tmp_path, f"{clips[0]}.wav: unreadable audio")


def test_a_stereo_wav_uses_the_first_channel(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    wav = root / "AudioWAV" / f"{clips[0]}.wav"
    mono, rate = soundfile.read(wav, dtype="float32")
    other = np.random.default_rng(1).normal(0, 0.5, mono.shape).astype(np.float32)
    soundfile.write(wav, np.stack([mono, other], axis=1), rate)
    handled(capsys, root, tmp_path)
    waveform, got_rate = read_waveform(wav)
    assert waveform.shape == (1, len(mono)) and got_rate == rate
    assert torch.equal(waveform[0], torch.from_numpy(mono))
    assert torch.equal(audio_features(wav), fbank(torch.from_numpy(mono).unsqueeze(0), rate))


def test_an_8_bit_wav_is_decoded(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    wav = root / "AudioWAV" / f"{clips[0]}.wav"
    samples, rate = soundfile.read(wav, dtype="float32")
    soundfile.write(wav, samples, rate, subtype="PCM_U8")
    assert soundfile.info(str(wav)).subtype == "PCM_U8"
    handled(capsys, root, tmp_path)
    waveform, _ = read_waveform(wav)
    assert waveform.dtype == torch.float32 and float(waveform.abs().max()) <= 1.0
    assert np.abs(waveform[0].numpy() - samples).max() < 2 / 256  # 8-bit quantisation only


def test_another_sample_rate_uses_the_files_rate(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    wav = root / "AudioWAV" / f"{clips[0]}.wav"
    write_wav(wav, seconds=0.6, rate=8000)
    handled(capsys, root, tmp_path)
    waveform, rate = read_waveform(wav)
    assert rate == 8000
    features = audio_features(wav)
    assert torch.equal(features, fbank(waveform, 8000))
    # 0.6 s at a 10 ms shift: 58 frames, whatever the rate (at 16 kHz as well)
    assert int((features.abs().sum(1) > 0).sum()) == 58


# ---------------------------------------------------------------------------------------------- images


def _replace_frame(root: Path, clip: str, image: Image.Image, name: str = "00001.jpg") -> Path:
    folder = root / "IMAGE_KEPT_1_PER_SEC" / clip
    (folder / "00001.jpg").unlink()
    path = folder / name
    image.save(path)
    return path


def _pixels(mode: str, size=(40, 30)) -> Image.Image:
    rgb = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(rgb).convert(mode)


@pytest.mark.parametrize(("mode", "name"), [("L", "00001.jpg"), ("RGBA", "00001.png"), ("CMYK", "00001.jpg")])
def test_grey_rgba_and_cmyk_frames_become_rgb(tmp_path, capsys, mode, name):
    root, clips = cremad(tmp_path)
    path = _replace_frame(root, clips[0], _pixels(mode), name)
    handled(capsys, root, tmp_path)
    frame = load_image(path)
    assert frame.shape == (3, 30, 40) and frame.dtype == torch.uint8
    with Image.open(path) as img:
        assert img.mode == mode
        expected = np.asarray(img.convert("RGB"))
    assert np.array_equal(frame.permute(1, 2, 0).numpy(), expected)
    if mode == "L":
        assert torch.equal(frame[0], frame[1]) and torch.equal(frame[1], frame[2])


def test_a_huge_frame_is_shrunk_to_the_caps(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    gradient = np.linspace(0, 255, 6000, dtype=np.uint8)[None, :, None].repeat(4000, 0).repeat(3, 2)
    path = _replace_frame(root, clips[0], Image.fromarray(gradient))
    handled(capsys, root, tmp_path)
    # decoded one frame at a time and stored shrunk: 6000x4000 -> 384x256 (short side 256)
    assert load_image(path).shape == (3, 256, 384)
    bundle = cremad_adapter(root, tmp_path).load(SMOKE)
    assert bundle.train.inputs["visual"].shape[-2:] == (256, 384)  # the canvas, not 4000x6000


def test_a_decompression_bomb_is_reported(tmp_path, capsys, monkeypatch):
    root, clips = cremad(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40x30 frames count as bombs (> 2x the limit)
    code, out, _ = check(capsys, root, tmp_path)
    assert code == 1 and "unreadable image" in out and "decompression bomb" in out


def test_an_empty_frame_folder_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = root / "IMAGE_KEPT_1_PER_SEC" / clips[0]
    shutil.rmtree(folder)
    folder.mkdir()
    refused(capsys, root, tmp_path, f"{clips[0]}: no frame images in folder")


def test_a_missing_frame_folder_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    shutil.rmtree(root / "IMAGE_KEPT_1_PER_SEC" / clips[0])
    refused(capsys, root, tmp_path, f"{clips[0]}: missing (visual of {clips[0]})")


def test_non_image_files_in_a_frame_folder_are_ignored(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = root / "IMAGE_KEPT_1_PER_SEC" / clips[0]
    clean = visual_frames(folder)
    for name, data in (("Thumbs.db", b"\x00\x01"), (".DS_Store", b"\x00"), ("notes.txt", b"frames 1-3")):
        (folder / name).write_bytes(data)
    handled(capsys, root, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(visual_frames(folder), clean, strict=True))


def test_a_picked_frame_that_is_not_an_image_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    (root / "IMAGE_KEPT_1_PER_SEC" / clips[0] / "00001.jpg").write_text("not a picture")
    refused(capsys, root, tmp_path, f"{clips[0]}/00001.jpg: unreadable image")


# ---------------------------------------------------------------------------------------------- layout


def test_a_folder_without_the_layout_is_reported(tmp_path, capsys):
    root, _ = cremad(tmp_path)
    shutil.rmtree(root / "AudioWAV")
    refused(capsys, root, tmp_path, "AudioWAV: missing folder (expected AudioWAV/<clip>.wav")


def test_a_clip_name_without_an_emotion_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    (root / "AudioWAV" / f"{clips[0]}.wav").rename(root / "AudioWAV" / "1001_DFA_XXX_XX.wav")
    line = refused(capsys, root, tmp_path, "1001_DFA_XXX_XX.wav: unknown label in clip name")
    assert "EMOTION in ANG, DIS, FEA, HAP, NEU, SAD" in line


# ---------------------------------------------------------------------------------------------- split files


def write_official(folder: Path, clips: list[str], train=None, val=None, test=None, *, newline="\n") -> Path:
    """The AMST CREMA-D split files (`<clip>.flv <Emotion>` lines): 8 / 2 / 2 clips by default."""
    folder.mkdir(parents=True, exist_ok=True)
    given = {"80_train_cre.txt": train, "10_val_cre.txt": val, "10_test_cre.txt": test}
    default = {"80_train_cre.txt": clips[:8], "10_val_cre.txt": clips[8:10], "10_test_cre.txt": clips[10:]}
    for name, lines in given.items():
        if lines is None:
            lines = [f"{c}.flv {EMOTION[c.split('_')[2]]}" for c in default[name]]
        (folder / name).write_bytes("".join(f"{line}{newline}" for line in lines).encode())
    return folder


def _line(clip: str) -> str:
    return f"{clip}.flv {EMOTION[clip.split('_')[2]]}"


def test_split_files_with_a_bom_and_windows_line_ends_are_read(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    given = write_official(tmp_path / "plain", clips)
    plain = cremad_adapter(root, tmp_path, split_dir=str(given)).scan(SMOKE)
    folder = write_official(tmp_path / "crlf", clips, newline="\r\n")
    train = folder / "80_train_cre.txt"
    train.write_bytes(b"\xef\xbb\xbf" + train.read_bytes())
    handled(capsys, root, tmp_path, "--set", f"cremad.split_dir={folder}")
    assert cremad_adapter(root, tmp_path, split_dir=str(folder)).scan(SMOKE).splits == plain.splits


def test_a_clip_in_two_official_split_files_is_warned_and_kept_as_given(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = write_official(tmp_path / "s", clips, val=[_line(c) for c in clips[8:10] + [clips[0]]])
    code, out, err = check(capsys, root, tmp_path, "--set", f"cremad.split_dir={folder}")
    assert code == 0 and "no problems found" in out
    assert err.splitlines() == [  # one line, as the harness's errors
        f"amst-bench: warning: cremad split files: 1 sample(s) in both train and val (e.g. {clips[0]}); "
        "accepted as given"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = cremad_adapter(root, tmp_path, split_dir=str(folder)).scan(SMOKE).splits
    assert clips[0] in splits["train"] and clips[0] in splits["val"]


def test_a_split_file_naming_an_unknown_clip_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    train = [_line(c) for c in clips[:8]] + ["1099_XXX_SAD_XX.flv Sad"]
    folder = write_official(tmp_path / "s", clips, train=train)
    refused(capsys, root, tmp_path, "80_train_cre.txt: 1099_XXX_SAD_XX is not in the dataset",
            "--set", f"cremad.split_dir={folder}")  # fmt: skip


def test_a_malformed_split_line_is_reported_with_file_and_line(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = write_official(tmp_path / "s", clips, train=[_line(clips[0]), "only-one-field"])
    refused(capsys, root, tmp_path, "80_train_cre.txt:2: expected '<id> <label>', got 'only-one-field'",
            "--set", f"cremad.split_dir={folder}")  # fmt: skip


def test_a_split_line_with_another_label_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    wrong = f"{clips[0]}.flv Happy"  # clips[0] is an ANG clip
    folder = write_official(tmp_path / "s", clips, train=[wrong] + [_line(c) for c in clips[1:8]])
    refused(capsys, root, tmp_path, f"80_train_cre.txt: {clips[0]} labelled Happy, the dataset says Anger",
            "--set", f"cremad.split_dir={folder}")  # fmt: skip


def test_a_split_file_that_is_not_utf8_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = write_official(tmp_path / "s", clips)
    val = "".join(_line(c) + "\n" for c in clips[8:10]).encode()
    (folder / "10_val_cre.txt").write_bytes(val + b"caf\xe9 Sad\n")
    refused(capsys, root, tmp_path, "10_val_cre.txt: not UTF-8 text", "--set", f"cremad.split_dir={folder}")


def test_a_missing_split_file_is_reported(tmp_path, capsys):
    root, clips = cremad(tmp_path)
    folder = write_official(tmp_path / "s", clips)
    (folder / "10_test_cre.txt").unlink()
    refused(capsys, root, tmp_path, "10_test_cre.txt: missing", "--set", f"cremad.split_dir={folder}")


# ---------------------------------------------------------------------------------------------- manifest


def write_manifest(root: Path, labels: dict[str, str], text: bool = False, extra_lines: str = "") -> Path:
    """manifest.csv with `visual` images (and `text` files) for each id → label."""
    columns = ["id", "label", "visual"] + (["text"] if text else [])
    lines = [",".join(columns)]
    for n, (sample, label) in enumerate(labels.items()):
        write_jpeg(root / "img" / f"{sample}.jpg", seed=n)
        cells = [sample, label, f"img/{sample}.jpg"]
        if text:
            (root / "txt").mkdir(parents=True, exist_ok=True)
            (root / "txt" / f"{sample}.txt").write_text("a happy cat sat on the mat")
            cells.append(f"txt/{sample}.txt")
        lines.append(",".join(cells))
    (root / "manifest.csv").write_text("\n".join(lines) + "\n" + extra_lines)
    return root


LABELS = {f"{label}{k}": label for label in ("cat", "dog") for k in range(5)}


def test_duplicate_ids_in_a_manifest_are_reported_with_the_line(tmp_path, capsys):
    root = write_manifest(tmp_path / "d", LABELS, extra_lines="cat0,dog,img/dog0.jpg\n")
    line = refused(capsys, root, tmp_path, "manifest.csv:12: repeated id 'cat0'", dataset="manifest")
    assert line.startswith(str(root / "manifest.csv"))


def test_a_latin1_text_file_is_reported(tmp_path, capsys):
    from tests.text_fixtures import make_text_model

    model = make_text_model(tmp_path / "roberta")
    root = write_manifest(tmp_path / "d", LABELS, text=True)
    (root / "txt" / "dog3.txt").write_bytes("a caf\xe9 dog".encode("latin-1"))
    refused(capsys, root, tmp_path, "dog3.txt: unreadable text ('utf-8' codec can't decode byte 0xe9",
            "--text-model", str(model), dataset="manifest")  # fmt: skip


# ---------------------------------------------------------------------------------------------- checkpoints


def _checkpoint_dir(tmp_path: Path) -> Path:
    return tmp_path / "r" / "checkpoints"


def _results(tmp_path: Path, folder: str = "r") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / folder / "runs").glob("*.json"))]


def _foreign_state(tmp_path: Path) -> dict:
    """A genuine checkpoint of another run (mla, an epoch in): another model, other optimisers."""
    from amst_bench.report.results import ResultStore
    from amst_bench.runner import GridRequest, execute, plan
    from amst_bench.train.trainer import SilentReporter

    class StopAfterFirstCheckpoint(SilentReporter):
        def end_epoch(self, epoch, train_loss, val_acc, best_val):
            if epoch == 1:
                raise KeyboardInterrupt

    protocol = dataclasses.replace(get_profile("smoke"), epochs=3)
    request = GridRequest(methods=["mla"], datasets=[DatasetRef("synthetic")], seeds=[0], protocol=protocol)
    store = ResultStore(tmp_path / "other")
    [spec] = plan(request)
    with pytest.raises(Exception, match="interrupted"):
        execute([spec], store, StopAfterFirstCheckpoint())
    return torch.load(store.checkpoint_path(spec.run_id), weights_only=False)


STALE = {
    "another-runs-checkpoint": _foreign_state,
    "edited-state": lambda tmp_path: {"epoch": 0, "method": {"model": {"no.such.layer": torch.zeros(3)}}},
    "not-a-mapping": lambda tmp_path: [1, 2, 3],
}


@pytest.mark.parametrize("case", sorted(STALE) + ["truncated", "empty"])
def test_a_checkpoint_that_cannot_resume_is_set_aside_and_the_run_starts_over(tmp_path, capsys, case):
    """A checkpoint is only ever written whole (atomically) under its run's id, so one that does
    not load is another code version's or foreign damage: it is kept aside (.stale / .corrupt),
    one warning line says so, and the run starts over, giving exactly the result of a clean run."""
    assert run(capsys, *grid(tmp_path / "clean"), "--set", "epochs=2")[0] == 0
    [clean] = _results(tmp_path / "clean")
    path = _checkpoint_dir(tmp_path) / f"{clean['run_id']}.pt"
    path.parent.mkdir(parents=True)
    if case in STALE:
        torch.save(STALE[case](tmp_path), path)
    else:
        good = {"epoch": 0, "method": {}, "history": {}}
        torch.save(good, path)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2] if case == "truncated" else b"")
    code, out, err = run(capsys, *grid(tmp_path), "--set", "epochs=2")
    assert code == 0, err
    [line] = [x for x in err.splitlines() if x.startswith("amst-bench: warning:")]
    kept = "stale" if case in STALE else "corrupt"
    assert line.startswith(f"amst-bench: warning: {path}: ")
    assert line.endswith(f"kept as {path.name}.{kept}, the run starts over")
    assert ("does not load into this run" if kept == "stale" else "not a readable checkpoint") in line
    assert (path.parent / f"{path.name}.{kept}").is_file()
    [result] = _results(tmp_path)
    assert result["curves"]["val_acc"] == clean["curves"]["val_acc"] and result["test"] == clean["test"]
    assert not path.exists()  # finished: no checkpoint left


# ---------------------------------------------------------------------------------------------- results


def _truncate(text: str) -> str:
    return text[: len(text) // 2]


def _edit(change):
    def edited(text: str) -> str:
        payload = json.loads(text)
        change(payload)
        return json.dumps(payload)

    return edited


DAMAGED = {
    "truncated": (_truncate, "skipped: not readable as JSON"),
    "missing-field": (_edit(lambda p: p.pop("test")), "skipped: field 'test': missing"),
    "wrong-type": (_edit(lambda p: p.update(seed="0")), "skipped: field 'seed': expected integer, got"),
    "foreign": (lambda text: json.dumps({"name": "left-pad"}), "skipped: not a result: no 'schema' field"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_result_of_a_planned_run_is_redone(tmp_path, capsys, case):
    """Leaderboards skip a damaged result with one line; `run` does not take it for done (it used
    to say 'done already' while the leaderboard had nothing): the run is redone and replaces it."""
    assert run(capsys, *grid(tmp_path))[0] == 0
    [path] = (tmp_path / "r" / "runs").glob("*.json")
    good = json.loads(path.read_text())
    damage, reason = DAMAGED[case]
    path.write_text(damage(path.read_text()))
    assert run(capsys, "leaderboard", "--results-dir", str(tmp_path / "r"), "--leaderboard-dir",
               str(tmp_path / "b"))[2].count(reason) == 1  # fmt: skip
    code, _, err = run(capsys, *grid(tmp_path))
    assert code == 0 and "done already" not in err and "warning" not in err, err
    redone = json.loads(path.read_text())
    assert redone["test"] == good["test"] and redone["curves"]["val_acc"] == good["curves"]["val_acc"]


def test_a_result_of_a_newer_schema_is_not_redone_over(tmp_path, capsys):
    assert run(capsys, *grid(tmp_path))[0] == 0
    [path] = (tmp_path / "r" / "runs").glob("*.json")
    newer = _edit(lambda p: p.update(schema=99))(path.read_text())
    path.write_text(newer)
    code, _, err = run(capsys, *grid(tmp_path))
    assert code == 0 and "done already: naive on synthetic, seed 0" in err
    assert "refused: result schema 99 is newer than this amst-bench reads" in err
    assert path.read_text() == newer


def test_status_of_a_results_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "r").write_text("not a folder")
    line = one_error(capsys, "status", "--results-dir", str(tmp_path / "r"))
    assert line == f"amst-bench: error: --results-dir {tmp_path / 'r'}: not a folder"


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    root, _ = cremad(tmp_path)
    (tmp_path / "c").write_text("not a folder")
    args = ["data", "prepare", f"cremad:{root}", "--profile", "smoke", "--cache-dir", str(tmp_path / "c")]
    line = one_error(capsys, *args, code=1)
    assert line.startswith(f"amst-bench: error: {tmp_path / 'c'}/cremad/")
    assert line.endswith(": Not a directory")


def test_a_text_model_folder_without_a_tokenizer_is_one_line(tmp_path, capsys):
    root = write_manifest(tmp_path / "d", LABELS, text=True)
    (tmp_path / "empty").mkdir()
    args = ["data", "check", f"manifest:{root}", "--text-model", str(tmp_path / "empty")]
    line = one_error(capsys, *args, "--cache-dir", str(tmp_path / "c"))
    assert f"--text-model {tmp_path / 'empty'}: cannot load a tokenizer" in line
    assert nothing_written(tmp_path)


def test_a_method_named_for_data_it_cannot_use_is_one_line(tmp_path, capsys):
    line = one_error(capsys, *grid(tmp_path, methods="text"))
    assert line.endswith("method 'text' needs the text modality; dataset 'synthetic' has audio, visual")
    assert not list((tmp_path / "r").rglob("*.json"))
