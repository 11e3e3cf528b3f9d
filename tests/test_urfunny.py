"""UR-FUNNY in its documented layout: the AMST sample file, WAVs, frames; splits; bad data; a run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

import amst_bench.datasets.urfunny  # noqa: F401  (registers `urfunny` in-process)
from amst_bench.datasets.urfunny import amst_split
from amst_bench.dataspec import DataLocations, make_adapter
from amst_bench.protocol import get_profile
from tests.fixtures import write_frames, write_wav
from tests.test_cli import cli
from tests.text_fixtures import make_text_model

TEXTS = {"1": "so funny joke we it was", "0": "the night was very bad"}


def make_urfunny(root: Path, count: int = 20) -> dict[str, str]:
    """ur_funny_all_text_label.txt (`<id>, <0|1> ### <text>`), WAV/<id>.wav, IMAGE_KEPT_1_PER_SEC/<id>/."""
    root.mkdir(parents=True, exist_ok=True)
    labels, lines = {}, []
    for k in range(count):
        sample, label = str(3 * k + 1), str(k % 2)
        labels[sample] = label
        lines.append(f"{sample}, {label} ### {TEXTS[label]}")
        write_wav(root / "WAV" / f"{sample}.wav", freq=250 + 150 * int(label), seed=k)
        write_frames(root / "IMAGE_KEPT_1_PER_SEC" / sample, 3, seed=k)
    (root / "ur_funny_all_text_label.txt").write_text("\n".join(lines) + "\n")
    return labels


@pytest.fixture
def setup(tmp_path):
    labels = make_urfunny(tmp_path / "d")
    protocol = dataclasses.replace(get_profile("smoke"), text_model=str(make_text_model(tmp_path / "tm")))
    return tmp_path, labels, protocol


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
    assert a.prepare(protocol) == path
    bundle = a.load(protocol)
    assert bundle.class_names == ("FUNNY", "NOTFUNNY")
    assert bundle.modalities == ("audio", "text", "visual")
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (16, 2, 2)
    text = bundle.train.inputs["text"]
    assert text.shape[1:] == (2, 16) and text.dtype == torch.int32
    assert bundle.train.inputs["visual"].shape[1:] == (3, 3, 224, 224)
    assert bundle.default_skip == {"audio": 6, "text": 10, "visual": 1}
    adapter(tmp_path, text_max_length="12").prepare(protocol)
    assert len(cache_files(tmp_path)) == 2  # another text length, another cache


def test_random_split_is_the_amst_algorithm_and_is_reused(setup):
    tmp_path, labels, protocol = setup
    splits = adapter(tmp_path).scan(protocol)[1]
    assert splits == amst_split(list(labels), protocol.split, 0)
    assert splits["train"] != sorted(splits["train"], key=int)  # shuffled
    folder = tmp_path / "c" / "urfunny" / "splits" / "random-seed0"
    assert (folder / "train.txt").read_text().splitlines()[0].split()[1] in ("FUNNY", "NOTFUNNY")
    assert adapter(tmp_path).scan(protocol)[1] == splits  # read back from the split files


def test_official_split_files(setup):
    tmp_path, labels, protocol = setup
    official = tmp_path / "official"
    official.mkdir()
    ids = list(labels)
    name = {"1": "FUNNY", "0": "NOTFUNNY"}
    for filename, members in (
        ("ur_funny_train.txt", ids[:14]),
        ("ur_funny_valid.txt", ids[14:17]),
        ("ur_funny_test.txt", ids[16:]),
    ):
        (official / filename).write_text(
            "".join(f"{i}, {name[labels[i]]}, ### {TEXTS[labels[i]]}\n" for i in members)
        )
    a = adapter(tmp_path, split_dir=str(official))
    with pytest.warns(UserWarning, match="1 sample\\(s\\) in both val and test"):
        _, splits, problems = a.scan(protocol)
    assert not problems and splits["train"] == ids[:14] and a.split_name() == "official-amst"
    (official / "ur_funny_test.txt").write_text(f"{ids[0]}, FUNNY, ### x\nbroken line\n")
    problems = adapter(tmp_path, split_dir=str(official)).check(protocol)
    assert any("ur_funny_test.txt:2" in p for p in problems)
    assert any(f"{ids[0]} labelled FUNNY" in p for p in problems)


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda d: (d / "WAV" / "1.wav").write_bytes(b"junk"), "1.wav: unreadable audio"),
        (lambda d: [p.unlink() for p in (d / "IMAGE_KEPT_1_PER_SEC" / "4").iterdir()], "4: no frame images"),
        (lambda d: (d / "ur_funny_all_text_label.txt").write_text("1, 1 no separator\n"), ":1: expected"),
        (lambda d: (d / "ur_funny_all_text_label.txt").write_text("1, 7 ### text\n"), "unknown label '7'"),
        (lambda d: (d / "ur_funny_all_text_label.txt").unlink(), "ur_funny_all_text_label.txt: missing"),
    ],
)
def test_bad_data_names_the_file_and_leaves_no_cache(setup, breakage, message):
    tmp_path, _, protocol = setup
    breakage(tmp_path / "d")
    a = adapter(tmp_path)
    assert any(message in p for p in a.check(protocol)), a.check(protocol)
    with pytest.raises(Exception, match="problem"):
        a.prepare(protocol)
    assert cache_files(tmp_path) == []


def test_cli_one_epoch_of_two_methods(setup):
    tmp_path, _, _ = setup
    assert (
        cli(
            "run",
            "--methods",
            "naive,amst-alt",
            "--datasets",
            f"urfunny:{tmp_path / 'd'}",
            "--seeds",
            "0",
            "--profile",
            "smoke",
            "--set",
            "epochs=1",
            "--text-model",
            str(tmp_path / "tm"),
            "--set",
            "urfunny.text_max_length=16",
            "--cache-dir",
            str(tmp_path / "c"),
            "--results-dir",
            str(tmp_path / "r"),
            "--leaderboard-dir",
            str(tmp_path / "b"),
        )
        == 0
    )
    runs = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    assert sorted(r["method"] for r in runs) == ["amst-alt", "naive"]
    assert next(r for r in runs if r["method"] == "amst-alt")["method_resolved"]["skip"]["audio"] == 6


AMST_REPO = Path(os.environ.get("AMST_REPO", "/work/.mirror/CXianRen+AMST/repo"))


@pytest.mark.skipif(not AMST_REPO.is_dir(), reason="the AMST repository is not on this machine")
def test_seed_zero_reproduces_the_amst_split_files():
    def lines(name):
        text = subprocess.run(
            ["git", "-C", str(AMST_REPO), "show", f"HEAD:code/data/UR-FUNNY/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line.split(",")[0].strip() for line in text.splitlines() if line.strip()]

    splits = amst_split(lines("ur_funny_all_text_label.txt"), (0.8, 0.1, 0.1), 0)
    assert splits["train"] == lines("ur_funny_train.txt")
    assert splits["val"] == lines("ur_funny_valid.txt")
    assert splits["test"] == lines("ur_funny_test.txt")
