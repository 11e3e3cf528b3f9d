"""CREMA-D in its real layout: check, prepare (cache), splits, bad data, and a short run."""

from __future__ import annotations

import pytest
import torch

from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import make_cremad, write_frames
from tests.helpers import cli, smoke_run

PROTOCOL = get_profile("smoke")


def adapter(root, cache, **options):
    return make_adapter(f"cremad:{root}", DataLocations(cache_dir=cache, options={"cremad": options}))


def cache_files(cache):
    return sorted(p.name for p in (cache / "cremad").glob("*.pt")) if (cache / "cremad").exists() else []


def test_check_prepare_and_load(tmp_path):
    clips = make_cremad(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    assert a.check(PROTOCOL) == []
    path = a.prepare(PROTOCOL)
    assert path.is_file() and a.prepare(PROTOCOL) == path  # prepared once, then reused
    bundle = a.load(PROTOCOL)
    assert bundle.class_names == ("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == len(clips)
    assert bundle.train.inputs["audio"].dtype == torch.float16
    assert bundle.train.inputs["audio"].shape[1:] == (1024, 128)
    assert bundle.train.inputs["visual"].dtype == torch.uint8
    assert bundle.train.inputs["visual"].shape[1:] == (3, 3, 30, 40)  # 40×30 frames, as stored
    assert bundle.input_shapes == {"audio": (1, 128, 16), "visual": (3, 3, 32, 32)}  # the smoke input budget


def test_changed_setting_makes_a_new_cache(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=2)
    first = adapter(tmp_path / "data", tmp_path / "cache").prepare(PROTOCOL)
    other = adapter(tmp_path / "data", tmp_path / "cache", split="speaker")
    second = other.prepare(PROTOCOL)
    assert first != second and first.is_file() and second.is_file()


def test_random_split_is_written_once_reused_and_disjoint(tmp_path):
    make_cremad(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(PROTOCOL)
    records, splits, problems = scan.records, scan.splits, scan.problems
    assert not problems
    folder = tmp_path / "cache" / "cremad" / "splits" / "random-seed0"
    text = (folder / "train.txt").read_text()
    assert text.splitlines()[0].endswith(
        (".flv Anger", ".flv Disgust", ".flv Fear", ".flv Happy", ".flv Neutral", ".flv Sad")
    )
    again = adapter(tmp_path / "data", tmp_path / "cache2").scan(PROTOCOL).splits
    assert again == splits  # same seed, same split, wherever it is drawn
    ids = [i for s in SPLITS for i in splits[s]]
    assert len(ids) == len(set(ids)) == len(records)


def test_speaker_split_keeps_each_actor_in_one_split(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=4)
    splits = adapter(tmp_path / "data", tmp_path / "cache", split="speaker").scan(PROTOCOL).splits
    actors = {s: {clip.split("_")[0] for clip in splits[s]} for s in SPLITS}
    assert not (actors["train"] & actors["val"]) and not (actors["train"] & actors["test"])
    assert not (actors["val"] & actors["test"])


def test_official_split_files_are_read_as_given_and_overlap_warned(tmp_path):
    clips = make_cremad(tmp_path / "data")
    official = tmp_path / "official"
    official.mkdir()
    label = {
        c: {"ANG": "Anger", "DIS": "Disgust", "FEA": "Fear", "HAP": "Happy", "NEU": "Neutral", "SAD": "Sad"}[
            c.split("_")[2]
        ]
        for c in clips
    }
    parts = {"80_train_cre.txt": clips[:12], "10_val_cre.txt": clips[12:15], "10_test_cre.txt": clips[14:]}
    for name, members in parts.items():
        (official / name).write_text("".join(f"{c}.flv {label[c]}\n" for c in members))
    a = adapter(tmp_path / "data", tmp_path / "cache", split="official", split_dir=str(official))
    with pytest.warns(UserWarning, match="1 sample\\(s\\) in both val and test"):
        scan = a.scan(PROTOCOL)
        splits, problems = scan.splits, scan.problems
    assert not problems
    assert splits["train"] == clips[:12] and splits["test"] == clips[14:]
    assert a.split_name(PROTOCOL) == "official-amst"


def test_bad_data_is_reported_with_file_names_and_leaves_no_cache(tmp_path):
    data = tmp_path / "data"
    clips = make_cremad(data)
    (data / "AudioWAV" / f"{clips[0]}.wav").write_bytes(b"not a wav file")
    missing = data / "IMAGE_KEPT_1_PER_SEC" / clips[1]
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()
    write_frames(data / "IMAGE_KEPT_1_PER_SEC" / "1001_DFA_XYZ_XX", 2)
    (data / "AudioWAV" / "1001_DFA_XYZ_XX.wav").write_bytes(
        (data / "AudioWAV" / f"{clips[2]}.wav").read_bytes()
    )
    a = adapter(data, tmp_path / "cache")
    problems = a.check(PROTOCOL)
    assert any(str(missing) in p and "missing" in p for p in problems)
    assert any("1001_DFA_XYZ_XX.wav" in p and "unknown label" in p for p in problems)
    with pytest.raises(UserError) as info:
        a.prepare(PROTOCOL)
    assert "problem" in str(info.value) and "\n" not in str(info.value)
    assert cache_files(tmp_path / "cache") == []
    # with the structural problems fixed, the unreadable WAV is reported by name, still no cache
    write_frames(missing, 3)
    (data / "AudioWAV" / "1001_DFA_XYZ_XX.wav").unlink()
    problems = a.check(PROTOCOL)
    assert problems == [p for p in problems if f"{clips[0]}.wav" in p] and problems
    with pytest.raises(UserError, match=f"{clips[0]}.wav"):
        a.prepare(PROTOCOL)
    assert cache_files(tmp_path / "cache") == []


def test_cli_data_check_prepare_and_a_one_epoch_run_of_two_methods(tmp_path, capsys):
    make_cremad(tmp_path / "data" / "cremad")  # found by --data-root as <root>/cremad
    common = ["--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache")]
    assert cli("data", "check", "cremad", "--profile", "smoke", *common) == 0
    assert "no problems" in capsys.readouterr().out
    assert cli("data", "prepare", "cremad", "--profile", "smoke", *common) == 0
    assert len(cache_files(tmp_path / "cache")) == 1
    runs = smoke_run(tmp_path, "naive,amst-joint", "cremad", *common)
    assert sorted(r["method"] for r in runs) == ["amst-joint", "naive"]
    assert all(
        r["split"] == "random-80/10/10" and r["method_resolved"].get("skip", {"audio": 5})["audio"] == 5
        for r in runs
    )
    assert len(cache_files(tmp_path / "cache")) == 1  # the run read the same cache


def test_missing_folder_is_one_clear_error(tmp_path):
    assert cli("data", "check", f"cremad:{tmp_path / 'nope'}") == 2


def test_bad_official_split_lines_are_all_reported_and_no_split_is_kept_from_broken_data(tmp_path):
    clips = make_cremad(tmp_path / "data")
    official = tmp_path / "official"
    official.mkdir()
    (official / "80_train_cre.txt").write_text(f"{clips[0]}.flv Anger\nonly-one-field\n")
    (official / "10_val_cre.txt").write_text(f"{clips[1]}.flv\n")
    a = adapter(tmp_path / "data", tmp_path / "cache", split="official", split_dir=str(official))
    problems = a.check(PROTOCOL)
    assert any("80_train_cre.txt:2" in p for p in problems)
    assert any("10_val_cre.txt:1" in p for p in problems)
    assert any("10_test_cre.txt: missing" in p for p in problems)
    # a random split drawn while files are missing is not written for later runs
    import shutil

    shutil.rmtree(tmp_path / "data" / "IMAGE_KEPT_1_PER_SEC" / clips[0])
    broken = adapter(tmp_path / "data", tmp_path / "cache2")
    assert broken.check(PROTOCOL)
    assert not (tmp_path / "cache2" / "cremad" / "splits").exists()


def test_unknown_dataset_option_is_one_clear_error(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=1)
    assert cli("data", "check", f"cremad:{tmp_path / 'data'}", "--set", "cremad.splt=speaker") == 2
    with pytest.raises(UserError, match="cremad.splt: cremad has no option 'splt'"):
        adapter(tmp_path / "data", tmp_path / "cache", splt="speaker")


def test_split_label_names_kind_fractions_and_seed(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=2)
    a = adapter(tmp_path / "data", tmp_path / "cache", split="speaker", split_seed="3")
    assert a.scan(PROTOCOL).split_name == "speaker-80/10/10-seed3"
    assert adapter(tmp_path / "data", tmp_path / "cache").split_name(PROTOCOL) == "random-80/10/10"
