"""AV-Digits on a small copy in FSDD's real layout (8 kHz WAVs in recordings/): check, prepare,
load, the pairing with scikit-learn's digits, bad inputs, and a short CLI run."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from datasets.av_digits import digit_frames, load_digit_images, pair_images
from tests.fixtures import write_wav
from tests.helpers import cli, smoke_run

PROTOCOL = get_profile("smoke")
SPEAKERS = ("alice", "bob", "carol")


def make_fsdd(root: Path, speakers=SPEAKERS, takes: int = 2) -> list[str]:
    """recordings/<digit>_<speaker>_<take>.wav, 8 kHz mono, a tone per digit and speaker."""
    clips = []
    for s, speaker in enumerate(speakers):
        for digit in range(10):
            for take in range(takes):
                clip = f"{digit}_{speaker}_{take}"
                write_wav(root / "recordings" / f"{clip}.wav", seconds=0.3, rate=8000,
                          freq=300.0 + 60 * digit + 7 * s, seed=len(clips))
                clips.append(clip)
    return clips


def adapter(root, cache, **options):
    return make_adapter(f"av-digits:{root}", DataLocations(cache_dir=cache, options={"av-digits": options}))


def cache_files(cache: Path) -> list[str]:
    folder = cache / "av-digits"
    return sorted(p.name for p in folder.glob("*.pt")) if folder.exists() else []


def speakers_of(clips) -> set[str]:
    return {c.split("_")[1] for c in clips}


def test_check_prepare_and_load(tmp_path):
    clips = make_fsdd(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    assert a.check(PROTOCOL) == []
    path = a.prepare(PROTOCOL)
    assert path.is_file() and a.prepare(PROTOCOL) == path  # prepared once, then reused
    bundle = a.load(PROTOCOL)
    assert bundle.class_names == tuple(str(d) for d in range(10))
    assert bundle.split_name == "speaker-1/1/1"
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == len(clips)
    assert bundle.train.inputs["audio"].dtype == torch.float16
    assert bundle.train.inputs["audio"].shape[1:] == (128, 128)  # the dataset's 128 frames, not 1024
    assert bundle.train.inputs["visual"].dtype == torch.uint8
    assert bundle.train.inputs["visual"].shape[1:] == (3, 3, 32, 32)
    assert bundle.input_shapes == {"audio": (1, 16, 16), "visual": (3, 3, 32, 32)}  # the smoke input budget
    pairing = bundle.info["pairing"]
    assert pairing["seed"] == 0 and Path(pairing["file"]).is_file()
    assert sum(pairing["images"].values()) == len(clips)  # few clips: each has its own image
    assert bundle.info["cache"]["settings"]["audio"]["target_frames"] == 128


def test_speaker_split_keeps_each_voice_in_one_split_and_is_stored(tmp_path):
    make_fsdd(tmp_path / "data")
    scan = adapter(tmp_path / "data", tmp_path / "cache").scan(PROTOCOL)
    voices = [speakers_of(scan.splits[s]) for s in SPLITS]
    assert all(len(v) == 1 for v in voices) and len(set.union(*voices)) == 3
    folder = tmp_path / "cache" / "av-digits" / "splits" / "speaker-1-1-1-seed0"
    assert (folder / "train.txt").read_text().splitlines()[0].endswith(".wav 0")
    assert adapter(tmp_path / "data", tmp_path / "cache2").scan(PROTOCOL).splits == scan.splits


def test_random_split_shares_speakers_and_names_its_seed(tmp_path):
    make_fsdd(tmp_path / "data", takes=4)
    a = adapter(tmp_path / "data", tmp_path / "cache", split="random")
    wide = dataclasses.replace(PROTOCOL, split=(0.4, 0.3, 0.3))  # every digit in each split of 120 clips
    scan = a.scan(wide)
    assert scan.problems == [] and scan.split_name == "random-40/30/30"
    assert speakers_of(scan.splits["train"]) & speakers_of(scan.splits["test"])
    assert (tmp_path / "cache" / "av-digits" / "splits" / "random-seed0-40-30-30" / "val.txt").is_file()
    other = adapter(tmp_path / "data", tmp_path / "cache", split="random", split_seed="2")
    assert other.split_name(PROTOCOL) == "random-80/10/10-seed2"


def test_pairing_same_digit_disjoint_and_deterministic(tmp_path):
    make_fsdd(tmp_path / "data")
    targets = load_digit_images().targets

    def pairing(cache, **options):
        scan = adapter(tmp_path / "data", cache, **options).scan(PROTOCOL)
        assert scan.problems == []
        image = {r.id: r.image for r in scan.records}
        return scan, image

    scan, image = pairing(tmp_path / "cache")
    assert all(targets[image[r.id]] == int(r.label) for r in scan.records)
    used = [{image[c] for c in scan.splits[s]} for s in SPLITS]
    assert not (used[0] & used[1]) and not (used[0] & used[2]) and not (used[1] & used[2])
    assert pairing(tmp_path / "cache2")[1] == image  # same seed, same pairing, wherever drawn
    assert pairing(tmp_path / "cache3", split_seed="1")[1] != image


def test_pairing_at_full_scale_cycles_each_splits_own_images():
    """3,000 clips as FSDD's (6 speakers × 10 digits × 50), 4/1/1 speakers: images never cross
    splits and each split's images are used ⌊c/n⌋ or ⌈c/n⌉ times."""
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    clips = {f"{d}_{s}_{k}": d for s in speakers for d in range(10) for k in range(50)}
    by = {"train": speakers[:4], "val": [speakers[4]], "test": [speakers[5]]}
    splits = {s: sorted(c for c in clips if c.split("_")[1] in by[s]) for s in SPLITS}
    targets = load_digit_images().targets
    pairing = pair_images(splits, clips, targets, seed=0)
    assert pairing == pair_images(splits, clips, targets, seed=0)
    assert all(targets[pairing[c]] == d for c, d in clips.items())
    images = {s: {pairing[c] for c in splits[s]} for s in SPLITS}
    assert not (images["train"] & images["val"]) and not (images["val"] & images["test"])
    assert not (images["train"] & images["test"])
    assert sum(len(v) for v in images.values()) == len(targets)  # every image is used somewhere
    for s in SPLITS:
        for d in range(10):
            uses: dict[int, int] = {}
            for c in splits[s]:
                if clips[c] == d:
                    uses[pairing[c]] = uses.get(pairing[c], 0) + 1
            assert max(uses.values()) - min(uses.values()) <= 1


def test_frames_are_the_upscaled_digit_then_seeded_perturbations(tmp_path):
    image = load_digit_images().images[0]
    frames = digit_frames(image, "s")
    assert len(frames) == 3 and all(f.shape == (3, 32, 32) and f.dtype == torch.uint8 for f in frames)
    assert all(torch.equal(a, b) for a, b in zip(frames, digit_frames(image, "s"), strict=True))
    assert not torch.equal(frames[1], frames[0]) and not torch.equal(frames[1], frames[2])
    assert frames[0][:, 0, 0].tolist() == [255, 255, 255]  # blank corner: white paper
    # the cached frames of a sample are those of its paired image
    make_fsdd(tmp_path / "data", speakers=SPEAKERS, takes=1)
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(PROTOCOL)
    bundle = a.load(PROTOCOL)
    first = scan.splits["train"][0]
    record = next(r for r in scan.records if r.id == first)
    expected = digit_frames(load_digit_images().images[record.image], f"av-digits:0:frames:{first}")
    assert torch.equal(bundle.train.inputs["visual"][0], torch.stack(expected))


def test_the_pairing_is_part_of_the_cache_key(tmp_path):
    make_fsdd(tmp_path / "data", takes=1)
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(PROTOCOL)
    moved = [dataclasses.replace(r, image=r.image + 1) if i == 0 else r for i, r in enumerate(scan.records)]
    assert a.cache_key(scan) != a.cache_key(dataclasses.replace(scan, records=moved))
    assert a.cache_key(scan) == a.cache_key(a.scan(PROTOCOL))


def one_problem(a) -> str:
    problems = a.check(PROTOCOL)
    assert len(problems) == 1, problems
    return problems[0]


def test_bad_inputs_are_one_clear_line_each_and_leave_no_cache(tmp_path):
    data = tmp_path / "data"
    make_fsdd(data)
    a = adapter(data, tmp_path / "cache")
    # a name that does not parse
    (data / "recordings" / "x_y.wav").write_bytes((data / "recordings" / "0_alice_0.wav").read_bytes())
    problem = one_problem(a)
    assert "x_y.wav" in problem and "does not parse" in problem
    (data / "recordings" / "x_y.wav").unlink()
    # a 16 kHz recording: refused, naming the file
    write_wav(data / "recordings" / "5_bob_1.wav", seconds=0.3, rate=16000)
    problem = one_problem(a)
    assert "5_bob_1.wav" in problem and "16000 Hz" in problem
    with pytest.raises(UserError, match="5_bob_1.wav") as info:
        a.prepare(PROTOCOL)
    assert "\n" not in str(info.value)
    assert cache_files(tmp_path / "cache") == []
    write_wav(data / "recordings" / "5_bob_1.wav", seconds=0.3, rate=8000)
    assert a.check(PROTOCOL) == []


def test_a_digit_with_no_clips_in_a_split_is_named(tmp_path):
    data = tmp_path / "data"
    make_fsdd(data)
    scan = adapter(data, tmp_path / "cache").scan(PROTOCOL)
    val_speaker = speakers_of(scan.splits["val"]).pop()
    for wav in (data / "recordings").glob(f"3_{val_speaker}_*.wav"):
        wav.unlink()
    problem = one_problem(adapter(data, tmp_path / "cache2"))  # a fresh draw: same speakers
    assert problem.startswith("av-digits: digit 3 has no clips in the val split (speaker-1/1/1)")


def test_missing_recordings_and_too_few_speakers(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    problem = one_problem(adapter(tmp_path / "empty", tmp_path / "cache"))
    assert problem.startswith(f"{tmp_path / 'empty' / 'recordings'}: missing folder")
    assert cli("data", "check", f"av-digits:{tmp_path / 'empty'}", "--cache-dir", str(tmp_path / "c")) == 1
    assert "1 problem(s)" in capsys.readouterr().err
    make_fsdd(tmp_path / "two", speakers=("alice", "bob"))
    problem = one_problem(adapter(tmp_path / "two", tmp_path / "cache"))
    assert "2 speaker(s)" in problem and "split=random" in problem


def test_cli_data_check_prepare_and_a_one_epoch_run_of_two_methods(tmp_path, capsys):
    make_fsdd(tmp_path / "data" / "av-digits", takes=1)  # found by --data-root as <root>/av-digits
    common = ["--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")]
    assert cli("data", "check", "av-digits", "--profile", "smoke", *common) == 0
    assert "no problems" in capsys.readouterr().out
    assert cli("data", "prepare", "av-digits", "--profile", "smoke", *common) == 0
    assert len(cache_files(tmp_path / "cache")) == 1
    runs = smoke_run(tmp_path, "naive,amst-joint", "av-digits", *common)
    assert sorted(r["method"] for r in runs) == ["amst-joint", "naive"]
    assert all(r["split"] == "speaker-1/1/1" for r in runs)
    assert all(r["dataset_info"]["pairing"]["digest"] == runs[0]["dataset_info"]["pairing"]["digest"]
               for r in runs)
    assert len(cache_files(tmp_path / "cache")) == 1  # the run read the same cache
    shutil.rmtree(tmp_path / "r")
