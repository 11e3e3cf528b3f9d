"""IEMOCAP in its pre-extracted layout (the AMST iemocap_all_sample.txt, WAV/, IMAGE_KEPT_2_PER_SEC/):
check, prepare (cache), load, the three splits, bad data, and a short run of two methods."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import amst_bench.datasets.iemocap  # noqa: F401  (registers `iemocap` in-process until its entry point exists)
from amst_bench.data.files import DataProblems
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.data.text import load_tokenizer, tokenize
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import write_frames, write_wav
from tests.helpers import cli, smoke_run
from tests.text_fixtures import WORDS, make_text_model

CLASSES = ("ang", "exc", "fru", "neu", "sad")
OFFICIAL = {"train": "iemocap_train.txt", "val": "iemocap_valid.txt", "test": "iemocap_test.txt"}
AMST_REPO = Path(os.environ.get("AMST_REPO", "/work/.mirror/CXianRen+AMST/repo"))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return make_text_model(tmp_path_factory.mktemp("text_model"))


@pytest.fixture
def protocol(text_model):
    return dataclasses.replace(get_profile("smoke"), text_model=str(text_model))


def utterance_id(session: int, k: int, speaker: str = "F") -> str:
    return f"Ses0{session}{'FM'[k % 2]}_impro0{k % 8 + 1}_{speaker}{k:03d}"


def sample_line(utterance: str, code: str, text: str, start: float = 1.5) -> str:
    """A line as gen_iemo_dataset.py writes it (note the space it leaves at the end)."""
    return f"{utterance}, {code}, {start:.4f}, {start + 2.25:.4f} ### {text} \n"


def make_iemocap(root: Path, per_class: int = 10, frames: int = 4) -> dict[str, tuple[str, str]]:
    """<root>/iemocap_all_sample.txt, WAV/<utt>.wav and IMAGE_KEPT_2_PER_SEC/<utt>/NNNNN.jpg.
    Per class, utterances spread over the 5 sessions; the file also holds lines with codes the
    official split leaves out (hap, xxx, sur), which have no files. Returns utt → (code, transcript)
    for the kept utterances, in file order."""
    kept: dict[str, tuple[str, str]] = {}
    lines = []
    n = 0
    for k in range(per_class):
        for c, code in enumerate(CLASSES):
            utt = utterance_id(k % 5 + 1, n, speaker="FM"[c % 2])
            words = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(3 + k % 4))
            text = f"{words}, {code} so very {WORDS[c]}"  # commas in transcripts, as in the real file
            lines.append(sample_line(utt, code, text, start=1.0 + n))
            write_wav(root / "WAV" / f"{utt}.wav", seconds=0.5, freq=200.0 + 120 * c, seed=n)
            write_frames(root / "IMAGE_KEPT_2_PER_SEC" / utt, frames, seed=n)
            kept[utt] = (code, text)
            n += 1
        lines.append(sample_line(utterance_id(k % 5 + 1, 500 + k), ("hap", "xxx", "sur")[k % 3], "the cat"))
    (root / "iemocap_all_sample.txt").write_text("".join(lines))
    return kept


def adapter(root, cache, **options):
    return make_adapter(f"iemocap:{root}", DataLocations(cache_dir=cache, options={"iemocap": options}))


def cache_files(cache):
    folder = cache / "iemocap"
    return sorted(p.name for p in folder.glob("*.pt")) if folder.exists() else []


def split_files(folder, splits, lines):
    folder.mkdir(parents=True, exist_ok=True)
    for s, filename in OFFICIAL.items():
        (folder / filename).write_text("".join(f"{lines[u]}\n" for u in splits[s]))


def sample_lines(root):
    text = (root / "iemocap_all_sample.txt").read_text()
    return {line.split(",")[0]: line.strip() for line in text.splitlines()}


# ---------------------------------------------------------------------------------------------


def test_check_prepare_and_load(tmp_path, protocol, text_model):
    kept = make_iemocap(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache", text_max_length="16")
    assert a.check(protocol) == []
    path = a.prepare(protocol)
    stamp = path.stat().st_mtime_ns
    assert a.prepare(protocol) == path and path.stat().st_mtime_ns == stamp  # written once, reused
    bundle = a.load(protocol)
    assert bundle.class_names == CLASSES and bundle.num_classes == 5
    assert bundle.modalities == ("audio", "text", "visual")
    assert bundle.default_skip == {"audio": 4, "text": 10, "visual": 1}
    assert bundle.split_name == "random-80/10/10"
    # stratified as the official split: per class int(0.8·10) = 8 train, int(0.1·10) = 1 test, 1 val
    assert [len(getattr(bundle, s)) for s in SPLITS] == [40, 5, 5]
    for s in SPLITS:
        counts = torch.bincount(getattr(bundle, s).labels, minlength=5).tolist()
        assert counts == ([8] * 5 if s == "train" else [1] * 5)
    inputs = bundle.train.inputs
    assert inputs["audio"].dtype == torch.float16 and inputs["audio"].shape[1:] == (1024, 128)
    assert inputs["visual"].dtype == torch.uint8 and inputs["visual"].shape[1:] == (3, 3, 30, 40)
    assert inputs["text"].dtype == torch.int32 and inputs["text"].shape[1:] == (2, 16)
    # the text of each sample is its transcript in the sample file, labels its code
    payload = torch.load(path, weights_only=False)
    assert sorted(payload["ids"]) == sorted(kept)
    tokenizer = load_tokenizer(text_model)
    all_text = torch.cat([getattr(bundle, s).inputs["text"] for s in SPLITS])
    all_labels = torch.cat([getattr(bundle, s).labels for s in SPLITS])
    for i, utt in enumerate(payload["ids"]):
        assert torch.equal(all_text[i], tokenize(tokenizer, kept[utt][1], 16))
        assert CLASSES[all_labels[i]] == kept[utt][0]
    # another text length is another cache; the first is kept
    longer = adapter(tmp_path / "data", tmp_path / "cache", text_max_length="24")
    assert longer.load(protocol).train.inputs["text"].shape[1:] == (2, 24)
    assert len(cache_files(tmp_path / "cache")) == 2 and path.is_file()


def test_random_split_is_written_in_the_official_format_and_reused(tmp_path, protocol):
    kept = make_iemocap(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(protocol)
    records, splits, problems = scan.records, scan.splits, scan.problems
    assert problems == [] and len(records) == len(kept)  # hap / xxx / sur lines are left out
    folder = tmp_path / "cache" / "iemocap" / "splits" / "random-seed0"
    lines = sample_lines(tmp_path / "data")
    for s, filename in OFFICIAL.items():  # the sample file's lines, as in iemocap_train.txt etc.
        assert (folder / filename).read_text() == "".join(f"{lines[u]}\n" for u in splits[s])
    ids = [u for s in SPLITS for u in splits[s]]
    assert len(ids) == len(set(ids)) == len(kept)
    # the same seed draws the same split anywhere; another seed another one
    assert adapter(tmp_path / "data", tmp_path / "cache2").scan(protocol).splits == splits
    other = adapter(tmp_path / "data", tmp_path / "cache3", split_seed="1")
    assert other.scan(protocol).splits != splits and other.split_name(protocol) == "random-80/10/10-seed1"
    # the stored files are what is reused: move one utterance from test to val
    moved = splits["test"][0]
    (folder / OFFICIAL["test"]).write_text("".join(f"{lines[u]}\n" for u in splits["test"][1:]))
    (folder / OFFICIAL["val"]).write_text("".join(f"{lines[u]}\n" for u in [*splits["val"], moved]))
    again = a.scan(protocol).splits
    assert moved in again["val"] and moved not in again["test"]
    # a stored folder can be given back as the official split_dir
    same = adapter(tmp_path / "data", tmp_path / "cache", split_dir=str(folder))
    assert same.scan(protocol).splits == again and same.split_name(protocol) == "official-amst"
    # a stored file naming an utterance no longer in the data is a problem (with the fix)
    (folder / OFFICIAL["train"]).write_text(
        f"Ses09F_impro01_F999, ang, 1.0, 2.0 ### x\n{lines[splits['train'][0]]}\n"
    )
    with pytest.warns(UserWarning, match=r"39 utterance\(s\) .* are in no file of the stored split"):
        problems = a.scan(protocol).problems
    assert any(f"{folder / OFFICIAL['train']}:1:" in p and "delete" in p for p in problems), problems


def test_session_split_keeps_each_session_in_one_split(tmp_path, protocol):
    make_iemocap(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache", split="session")
    scan = a.scan(protocol)
    splits, problems = scan.splits, scan.problems
    assert problems == []
    sessions = {s: {u[:5] for u in splits[s]} for s in SPLITS}
    assert sessions == {"train": {"Ses01", "Ses02", "Ses03"}, "val": {"Ses04"}, "test": {"Ses05"}}
    assert a.split_name(protocol) == "session-val4-test5"
    assert not (tmp_path / "cache" / "iemocap" / "splits").exists()  # nothing drawn, nothing stored
    b = adapter(tmp_path / "data", tmp_path / "cache", split="session", test_session="1", val_session="2")
    splits = b.scan(protocol).splits
    assert {u[:5] for u in splits["test"]} == {"Ses01"} and {u[:5] for u in splits["val"]} == {"Ses02"}
    c = adapter(tmp_path / "data", tmp_path / "cache", split="session", test_session="7")
    assert any("session 7" in p and "iemocap.test_session" in p for p in c.scan(protocol).problems)
    with pytest.raises(UserError, match="both are session 4"):
        adapter(tmp_path / "data", tmp_path / "cache", split="session", test_session="4")


def test_official_split_files_are_read_as_given(tmp_path, protocol):
    data = tmp_path / "data"
    kept = list(make_iemocap(data))
    lines = sample_lines(data)
    given = {"train": kept[10:][::-1], "val": kept[:5], "test": kept[4:10]}  # kept[4] in val and test
    split_files(tmp_path / "amst", given, lines)
    a = adapter(data, tmp_path / "cache", split_dir=str(tmp_path / "amst"))
    with pytest.warns(UserWarning, match=r"1 utterance\(s\) in both val and test"):
        scan = a.scan(protocol)
        splits, problems = scan.splits, scan.problems
    assert problems == [] and splits == given  # file order kept
    assert a.split_name(protocol) == "official-amst"
    # `<utterance>, <code>` is enough (the official loader reads no more)
    (tmp_path / "amst" / OFFICIAL["val"]).write_text(
        "".join(f"{u}, {lines[u].split(', ')[1]}\n" for u in kept[:4])
    )
    assert a.scan(protocol).splits["val"] == kept[:4]
    # each line is checked against the sample file, by file and line
    test_file = tmp_path / "amst" / OFFICIAL["test"]
    hap = next(u for u, line in lines.items() if ", hap," in line)
    code = lines[kept[4]].split(", ")[1]
    other = next(c for c in CLASSES if c != code)
    test_file.write_text(
        f"{lines[kept[4]].replace(f', {code},', f', {other},')}\n{hap}, exc\nSes01F_nowhere_F000, ang\n"
        "Ses01F_impro01_F000 ang 1.0 2.0 ### no commas\n"
    )
    problems = a.scan(protocol).problems
    assert any(
        f"{test_file}:1:" in p and f"labelled {other!r}" in p and f"says {code!r}" in p for p in problems
    )
    assert any(f"{test_file}:2:" in p and "'hap'" in p for p in problems)
    assert any(f"{test_file}:3:" in p and "not in" in p for p in problems)
    assert any(f"{test_file}:4:" in p and "malformed line" in p for p in problems)
    assert len(problems) == 5 and "iemocap: the test split is empty" in problems, problems
    # split=official needs a folder holding the three files
    missing = adapter(data, tmp_path / "cache", split="official").check(protocol)
    assert any("iemocap.split_dir" in p and "iemocap_valid.txt" in p for p in missing)
    (tmp_path / "amst" / OFFICIAL["train"]).unlink()
    assert any(f"{tmp_path / 'amst' / OFFICIAL['train']}: missing" in p for p in a.check(protocol))


def _unknown_code(data, kept):
    path = data / "iemocap_all_sample.txt"
    path.write_text(path.read_text() + sample_line("Ses02F_impro03_F900", "joy", "a happy day"))
    return [f"{path}:61:", "unknown emotion code 'joy'"]


def _no_transcript(data, kept):
    path = data / "iemocap_all_sample.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].split("###")[0]
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}:3:", "no transcript"]


def _malformed_times(data, kept):
    path = data / "iemocap_all_sample.txt"
    lines = path.read_text().splitlines()
    fields = lines[6].split(", ")
    lines[6] = ", ".join([*fields[:2], "seven", *fields[3:]])
    path.write_text("\n".join(lines) + "\n")
    return [f"{path}:7:", "malformed line", "numbers"]


def _repeated(data, kept):
    path = data / "iemocap_all_sample.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    return [f"{path}:61:", "listed again", "line 2"]


def _missing_frames(data, kept):
    folder = data / "IMAGE_KEPT_2_PER_SEC" / list(kept)[3]
    shutil.rmtree(folder)
    return [str(folder), "missing"]


def _bad_wav(data, kept):
    wav = data / "WAV" / f"{list(kept)[7]}.wav"
    wav.write_bytes(b"RIFF but not really a wav file")
    return [str(wav), "unreadable audio"]


def _empty_frames(data, kept):
    folder = data / "IMAGE_KEPT_2_PER_SEC" / list(kept)[9]
    for f in folder.iterdir():
        f.unlink()
    return [str(folder), "no frame images"]


@pytest.mark.parametrize(
    "damage",
    [_unknown_code, _no_transcript, _malformed_times, _repeated, _missing_frames, _bad_wav, _empty_frames],
)
def test_bad_data_is_reported_with_the_file_and_leaves_no_cache(tmp_path, protocol, damage):
    data = tmp_path / "data"
    kept = make_iemocap(data)
    expected = damage(data, kept)
    a = adapter(data, tmp_path / "cache", text_max_length="16")
    problems = a.check(protocol)
    assert problems and any(all(part in p for part in expected) for p in problems), problems
    with pytest.raises(DataProblems) as info:
        a.prepare(protocol)
    assert expected[0] in str(info.value) and "\n" not in str(info.value)
    assert cache_files(tmp_path / "cache") == []
    if damage not in (_bad_wav, _empty_frames):  # found before the split: none is stored
        assert not (tmp_path / "cache" / "iemocap" / "splits").exists()


def test_missing_layout_and_bad_options_are_one_clear_error(tmp_path, protocol, capsys):
    data = tmp_path / "data"
    make_iemocap(data, per_class=2)
    shutil.rmtree(data / "WAV")
    problems = adapter(data, tmp_path / "cache").check(protocol)
    assert any(str(data / "WAV") in p and "missing folder" in p for p in problems)
    (data / "iemocap_all_sample.txt").unlink()
    problems = adapter(data, tmp_path / "cache").check(protocol)
    assert any(str(data / "iemocap_all_sample.txt") in p and "missing" in p for p in problems)
    with pytest.raises(UserError, match="iemocap.max_length: iemocap has no option"):
        adapter(data, tmp_path / "cache", max_length="16")
    with pytest.raises(UserError, match="expected one of random, session, official"):
        adapter(data, tmp_path / "cache", split="speaker")
    with pytest.raises(UserError, match="applies to split=official"):
        adapter(data, tmp_path / "cache", split="session", split_dir=str(tmp_path))
    with pytest.raises(UserError, match="text_max_length: expected an integer"):
        adapter(data, tmp_path / "cache", text_max_length="long")
    assert cli("data", "check", f"iemocap:{tmp_path / 'nope'}") == 2
    assert cli("data", "check", f"iemocap:{data}", "--set", "iemocap.split=bogus") == 2
    assert "Traceback" not in "".join(capsys.readouterr())


def _amst_file(name: str) -> str | None:
    """A file of the AMST repository's code/data/IEMOCAP/ (from a git mirror or a checkout)."""
    path = AMST_REPO / "code" / "data" / "IEMOCAP" / name
    if path.is_file():
        return path.read_text()
    try:
        done = subprocess.run(
            ["git", "-C", str(AMST_REPO), "show", f"HEAD:code/data/IEMOCAP/{name}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def test_random_split_of_the_amst_sample_file_is_the_amst_split(tmp_path, protocol):
    """With the real iemocap_all_sample.txt (10,039 lines) and seed 0, `random` draws exactly the
    AMST iemocap_train/valid/test.txt; their files also pass as `official`, 5,426 / 683 / 676."""
    texts = {name: _amst_file(name) for name in ["iemocap_all_sample.txt", *OFFICIAL.values()]}
    if any(t is None for t in texts.values()):
        pytest.skip(f"the AMST repository is not at {AMST_REPO} (set AMST_REPO)")
    data, amst = tmp_path / "data", tmp_path / "amst"
    for folder in (data / "WAV", data / "IMAGE_KEPT_2_PER_SEC", amst):
        folder.mkdir(parents=True)
    (data / "iemocap_all_sample.txt").write_text(texts["iemocap_all_sample.txt"])
    for name in OFFICIAL.values():
        (amst / name).write_text(texts[name])
    a = adapter(data, tmp_path / "cache")
    problems: list[str] = []
    records = a.find_records(data, problems)  # the files themselves are not needed here
    assert problems == [] and len(records) == 6785
    counts = {c: sum(r.label == c for r in records) for c in CLASSES}
    assert counts == {"ang": 1103, "exc": 1041, "fru": 1849, "neu": 1708, "sad": 1084}
    ours = a.make_splits(records, protocol, problems)
    theirs = adapter(data, tmp_path / "cache", split_dir=str(amst)).make_splits(records, protocol, problems)
    assert problems == []
    assert [len(theirs[s]) for s in SPLITS] == [5426, 683, 676]
    assert {s: set(ours[s]) for s in SPLITS} == {s: set(theirs[s]) for s in SPLITS}


def test_cli_runs_two_methods_for_one_epoch(tmp_path, text_model):
    root = tmp_path / "data"
    make_iemocap(root)
    common = ["--cache-dir", str(tmp_path / "cache"), "--text-model", str(text_model)]
    assert cli("data", "check", f"iemocap:{root}", "--set", "iemocap.text_max_length=16", *common) == 0
    runs = smoke_run(
        tmp_path, "naive,amst-alt", f"iemocap:{root}", "--set", "iemocap.text_max_length=16", *common
    )
    assert sorted(r["method"] for r in runs) == ["amst-alt", "naive"]
    assert all(r["split"] == "random-80/10/10" for r in runs)
    alt = next(r for r in runs if r["method"] == "amst-alt")
    assert alt["method_resolved"]["skip"] == {"audio": 4, "text": 10, "visual": 1}
    assert len(cache_files(tmp_path / "cache")) == 1  # check wrote none; the run prepared one
