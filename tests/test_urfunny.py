"""UR-FUNNY in its documented layout: the AMST sample file, WAVs, frames; splits; bad data; a run."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

import amst_bench.datasets.urfunny  # noqa: F401  (registers `urfunny` in-process)
from amst_bench.data.adapter import DataSource
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.data.text import load_tokenizer, tokenize
from amst_bench.datasets.urfunny import OFFICIAL_FILES, URFunny, amst_split
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import write_frames, write_wav
from tests.helpers import cli, smoke_run
from tests.text_fixtures import make_text_model

TEXTS = {"1": "so funny joke we it was", "0": "the night was very bad"}
NAMES = {"1": "FUNNY", "0": "NOTFUNNY"}
SAMPLE_FILE = "ur_funny_all_text_label.txt"


def make_urfunny(root: Path, count: int = 20, frames: int = 4) -> dict[str, str]:
    """`ur_funny_all_text_label.txt` (`<id>, <0|1> ### <text>`), WAV/<id>.wav and
    IMAGE_KEPT_1_PER_SEC/<id>/NNNNN.jpg for `count` segments, alternately humorous and not.
    Returns id → label field (0/1), in file order."""
    root.mkdir(parents=True, exist_ok=True)
    labels, lines = {}, []
    for k in range(count):
        sample, label = str(3 * k + 1), str(k % 2)
        labels[sample] = label
        lines.append(f"{sample}, {label} ### {TEXTS[label]}")
        write_wav(root / "WAV" / f"{sample}.wav", freq=250 + 150 * int(label), seed=k)
        write_frames(root / "IMAGE_KEPT_1_PER_SEC" / sample, frames, seed=k)
    (root / SAMPLE_FILE).write_text("\n".join(lines) + "\n")
    return labels


def write_split_files(folder: Path, parts: dict[str, list[str]], labels: dict[str, str]) -> None:
    """The AMST split files: `<id>, <FUNNY|NOTFUNNY>, ### <text>`."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, members in parts.items():
        lines = "".join(f"{i}, {NAMES[labels[i]]}, ### {TEXTS[labels[i]]}\n" for i in members)
        (folder / OFFICIAL_FILES[split]).write_text(lines)


@pytest.fixture
def setup(tmp_path):
    labels = make_urfunny(tmp_path / "d")
    model = make_text_model(tmp_path / "tm")
    return tmp_path, labels, dataclasses.replace(get_profile("smoke"), text_model=str(model))


def adapter(tmp_path, cache="c", **options):
    options.setdefault("text_max_length", "16")
    return make_adapter(
        f"urfunny:{tmp_path / 'd'}", DataLocations(cache_dir=tmp_path / cache, options={"urfunny": options})
    )


def cache_files(tmp_path, cache="c"):
    folder = tmp_path / cache / "urfunny"
    return sorted(folder.glob("*.pt")) if folder.exists() else []


def test_check_prepare_load(setup):
    tmp_path, labels, protocol = setup
    a = adapter(tmp_path)
    assert a.check(protocol) == []
    path = a.prepare(protocol)
    assert path.is_file() and a.prepare(protocol) == path  # prepared once, then reused
    bundle = a.load(protocol)
    assert bundle.class_names == ("FUNNY", "NOTFUNNY")
    assert bundle.modalities == ("audio", "text", "visual")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (16, 2, 2)
    assert bundle.split_name == "random-80/10/10"
    assert bundle.default_skip == {"audio": 6, "text": 10, "visual": 1}
    inputs = bundle.train.inputs
    assert inputs["text"].shape[1:] == (2, 16) and inputs["text"].dtype == torch.int32
    assert inputs["audio"].shape[1:] == (1024, 128) and inputs["audio"].dtype == torch.float16
    assert inputs["visual"].shape[1:] == (3, 3, 30, 40) and inputs["visual"].dtype == torch.uint8
    # each segment's tokens are its own text, and its class index its label (1 → FUNNY = 0)
    tokenizer = load_tokenizer(protocol.text_model)
    expected = {c: tokenize(tokenizer, TEXTS[c], 16) for c in TEXTS}
    for split in (bundle.train, bundle.val, bundle.test):
        for tokens, y in zip(split.inputs["text"], split.labels, strict=True):
            assert torch.equal(tokens, expected["1" if y.item() == 0 else "0"])
    assert len(cache_files(tmp_path)) == 1
    adapter(tmp_path, text_max_length="12").prepare(protocol)
    assert len(cache_files(tmp_path)) == 2  # another text length, another cache


def test_random_split_is_the_amst_algorithm_stored_in_their_format_and_reused(setup):
    tmp_path, labels, protocol = setup
    splits = adapter(tmp_path).scan(protocol).splits
    assert splits == amst_split(list(labels), protocol.split, 0)
    assert [len(splits[s]) for s in SPLITS] == [16, 2, 2]
    assert splits["train"] != sorted(splits["train"], key=int)  # shuffled, order kept
    folder = tmp_path / "c" / "urfunny" / "splits" / "random-seed0"
    first = (folder / "ur_funny_train.txt").read_text().splitlines()[0]
    sample = splits["train"][0]
    assert first == f"{sample}, {NAMES[labels[sample]]}, ### {TEXTS[labels[sample]]}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert adapter(tmp_path).scan(protocol).splits == splits  # read back from the split files
        # the stored folder is a valid split_dir for split=official
        assert adapter(tmp_path, "c2", split_dir=str(folder)).scan(protocol).splits == splits
    other = adapter(tmp_path, split_seed="1")
    assert other.scan(protocol).splits != splits and other.split_name(protocol) == "random-80/10/10-seed1"
    assert (tmp_path / "c" / "urfunny" / "splits" / "random-seed1" / "ur_funny_test.txt").is_file()


def test_official_split_files_are_read_as_given(setup):
    tmp_path, labels, protocol = setup
    ids = list(labels)
    official = tmp_path / "official"
    write_split_files(official, {"train": ids[:14], "val": ids[14:17], "test": ids[16:]}, labels)
    a = adapter(tmp_path, split_dir=str(official))  # split_dir alone means split=official
    with pytest.warns(UserWarning, match="1 segment\\(s\\) in both val and test"):
        scan = a.scan(protocol)
        splits, problems = scan.splits, scan.problems
    assert not problems and a.split_name(protocol) == "official-amst"
    assert splits == {"train": ids[:14], "val": ids[14:17], "test": ids[16:]}


def test_bad_official_split_files_name_file_and_line(setup):
    tmp_path, labels, protocol = setup
    ids = list(labels)
    official = tmp_path / "official"
    write_split_files(official, {"train": ids[:16], "val": ids[16:18]}, labels)
    wrong = "FUNNY" if labels[ids[18]] == "0" else "NOTFUNNY"
    (official / "ur_funny_train.txt").open("a").write(
        f"{ids[18]}, {wrong}, ### x\nbroken line\n999, FUNNY, ### y\n"
    )
    problems = adapter(tmp_path, split="official", split_dir=str(official)).check(protocol)
    assert any(f"ur_funny_train.txt:17: segment {ids[18]} labelled {wrong}" in p for p in problems)
    assert any("ur_funny_train.txt:18: malformed line" in p for p in problems)
    assert any("ur_funny_train.txt:19: segment 999 is not among" in p for p in problems)
    assert any(p.endswith("ur_funny_test.txt: missing") for p in problems)
    missing = adapter(tmp_path, split="official").check(protocol)
    assert any("split_dir=DIR: not given" in p for p in missing)
    assert cache_files(tmp_path) == []


def test_sample_file_in_the_split_file_format_is_read_too(setup):
    """`cat ur_funny_train.txt ur_funny_valid.txt ur_funny_test.txt` as the sample file."""
    tmp_path, labels, protocol = setup
    lines = [f"{i}, {NAMES[label]}, ### {TEXTS[label]}" for i, label in labels.items()]
    (tmp_path / "d" / SAMPLE_FILE).write_text("\n".join(lines) + "\n")
    scan = adapter(tmp_path).scan(protocol)
    records, problems = scan.records, scan.problems
    assert problems == []
    assert {r.id: r.label for r in records} == {i: NAMES[label] for i, label in labels.items()}


def _rewrite_sample_line(root: Path, number: int, line: str) -> None:
    lines = (root / SAMPLE_FILE).read_text().splitlines()
    lines[number - 1] = line
    (root / SAMPLE_FILE).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "WAV" / "1.wav").write_bytes(b"junk"), "WAV/1.wav: unreadable audio"),
        (lambda d: (d / "WAV" / "4.wav").unlink(), "WAV/4.wav: missing (audio of 4)"),
        (lambda d: shutil.rmtree(d / "IMAGE_KEPT_1_PER_SEC" / "7"), "IMAGE_KEPT_1_PER_SEC/7: missing"),
        (
            lambda d: [p.unlink() for p in (d / "IMAGE_KEPT_1_PER_SEC" / "7").iterdir()],
            "IMAGE_KEPT_1_PER_SEC/7: no frame images",
        ),
        (lambda d: shutil.rmtree(d / "WAV"), "WAV: missing folder"),
        (
            lambda d: _rewrite_sample_line(d, 2, "4, 1 no separator"),
            f"{SAMPLE_FILE}:2: malformed line, no '###'",
        ),
        (
            lambda d: _rewrite_sample_line(d, 3, "7, 1, 2 ### text"),
            f"{SAMPLE_FILE}:3: malformed line, expected",
        ),
        (lambda d: _rewrite_sample_line(d, 3, "7 ### text"), f"{SAMPLE_FILE}:3: malformed line, expected"),
        (
            lambda d: _rewrite_sample_line(d, 4, "10, 7 ### text"),
            f"{SAMPLE_FILE}:4: malformed line, unknown label '7'",
        ),
        (lambda d: _rewrite_sample_line(d, 4, "10, 1 ###"), f"{SAMPLE_FILE}:4: malformed line, empty text"),
        (
            lambda d: _rewrite_sample_line(d, 5, "1, 0 ### again"),
            f"{SAMPLE_FILE}:5: segment 1 is listed again",
        ),
        (lambda d: (d / SAMPLE_FILE).unlink(), f"{SAMPLE_FILE}: missing"),
        (lambda d: (d / SAMPLE_FILE).write_bytes(b"1, 1 ### \xff\xfe\n"), f"{SAMPLE_FILE}: not UTF-8"),
    ],
)
def test_bad_data_names_the_file_and_leaves_no_cache(tmp_path, breakage, message):
    make_urfunny(tmp_path / "d", count=10, frames=3)
    protocol = dataclasses.replace(get_profile("smoke"), text_model=str(make_text_model(tmp_path / "tm")))
    breakage(tmp_path / "d")
    a = adapter(tmp_path)
    problems = a.check(protocol)
    assert any(message in p for p in problems), problems
    with pytest.raises(UserError, match="problem") as info:
        a.prepare(protocol)
    assert "\n" not in str(info.value)
    assert cache_files(tmp_path) == []
    if "unreadable" not in message and "no frame images" not in message:  # found before decoding
        assert not (tmp_path / "c" / "urfunny" / "splits").exists()  # no split kept from broken data


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "speaker"}, "urfunny.split: expected one of random, official"),
        ({"split_seed": "x"}, "urfunny.split_seed: expected an integer"),
        ({"text_max_length": "1"}, "urfunny.text_max_length: expected a value ≥ 2"),
        ({"split": "random", "split_dir": "x"}, "split_dir applies to split=official"),
        ({"speaker": "1"}, "urfunny.speaker: urfunny has no option 'speaker'"),
    ],
)
def test_bad_options_are_one_clear_error(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        URFunny(DataSource(tmp_path, tmp_path / "c", options))


def test_cli_one_epoch_of_two_methods(setup):
    tmp_path, _, _ = setup
    common = ["--cache-dir", str(tmp_path / "c"), "--text-model", str(tmp_path / "tm")]
    common += ["--set", "urfunny.text_max_length=16"]
    assert cli("data", "check", f"urfunny:{tmp_path / 'd'}", "--profile", "smoke", *common) == 0
    runs = smoke_run(tmp_path, "naive,amst-alt", f"urfunny:{tmp_path / 'd'}", *common)
    assert sorted(r["method"] for r in runs) == ["amst-alt", "naive"]
    assert all(r["split"] == "random-80/10/10" for r in runs)
    assert next(r for r in runs if r["method"] == "amst-alt")["method_resolved"]["skip"]["audio"] == 6
    assert len(cache_files(tmp_path)) == 1  # both methods read the same cache


AMST_REPO = Path(os.environ.get("AMST_REPO", "/work/.mirror/CXianRen+AMST/repo"))


def _amst_file(name: str) -> str:
    return subprocess.run(
        ["git", "-C", str(AMST_REPO), "show", f"HEAD:code/data/UR-FUNNY/{name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


HAS_AMST_REPO = shutil.which("git") is not None and any((AMST_REPO / p).exists() for p in ("HEAD", ".git"))


@pytest.mark.skipif(not HAS_AMST_REPO, reason="the AMST repository is not on this machine (set AMST_REPO)")
def test_the_amst_files_seed_zero_reproduces_their_split_and_their_files_read_as_given(tmp_path):
    root = tmp_path / "d"
    for folder in ("WAV", "IMAGE_KEPT_1_PER_SEC"):
        (root / folder).mkdir(parents=True)
    (root / SAMPLE_FILE).write_text(_amst_file(SAMPLE_FILE))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for filename in OFFICIAL_FILES.values():
        (theirs / filename).write_text(_amst_file(filename))
    their_ids = {
        s: [line.split(",")[0] for line in (theirs / f).read_text().splitlines()]
        for s, f in OFFICIAL_FILES.items()
    }
    protocol = get_profile("paper")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overlap, nothing left out
        for options in ({}, {"split_dir": str(theirs)}):
            a = URFunny(DataSource(root, tmp_path / "c", options))
            problems: list[str] = []
            records = a.find_records(root, problems)
            splits = a.make_splits(records, protocol, problems)
            assert problems == []
            assert len(records) == 10166
            assert sum(r.label == "FUNNY" for r in records) == 5083  # ur_funny_info.txt
            assert splits == their_ids  # 8,132 / 1,016 / 1,018, in their order
    stored = tmp_path / "c" / "urfunny" / "splits" / "random-seed0"
    for filename in OFFICIAL_FILES.values():  # the stored random split: their files, line for line
        ours = (stored / filename).read_text().splitlines()
        assert ours == [line.strip() for line in (theirs / filename).read_text().splitlines()]
