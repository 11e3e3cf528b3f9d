"""AVE in its real layout (official split files, WAV/, IMAGE_KEPT_1_PER_SEC/): check, prepare
(cache), load, the AMST split-file option, bad data, and a short run."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import amst_bench.datasets.ave  # noqa: F401  (registers `ave` in-process until its entry point exists)
from amst_bench.data.files import DataProblems
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import (
    AVE_CATEGORIES,
    AVE_HEADER,
    ave_line,
    make_ave,
    write_ave_amst_split_files,
    write_ave_video,
)
from tests.helpers import cli, smoke_run

PROTOCOL = get_profile("smoke")


def adapter(root, cache, **options):
    return make_adapter(f"ave:{root}", DataLocations(cache_dir=cache, options={"ave": options}))


def cache_files(cache):
    return sorted(p.name for p in (cache / "ave").glob("*.pt")) if (cache / "ave").exists() else []


def test_check_prepare_and_load(tmp_path):
    splits = make_ave(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    assert a.check(PROTOCOL) == []
    path = a.prepare(PROTOCOL)
    stamp = path.stat().st_mtime_ns
    assert a.prepare(PROTOCOL) == path and path.stat().st_mtime_ns == stamp  # written once, then reused
    assert cache_files(tmp_path / "cache") == [path.name]
    bundle = a.load(PROTOCOL)
    assert bundle.class_names == tuple(sorted(AVE_CATEGORIES))
    assert bundle.split_name == "official" and bundle.default_skip == {"audio": 2, "visual": 1}
    for s in SPLITS:  # sizes, order and labels exactly as the split files give them
        part = getattr(bundle, s)
        assert len(part) == len(splits[s])
        assert [bundle.class_names[i] for i in part.labels.tolist()] == [c for _, c in splits[s]]
    payload = torch.load(path, weights_only=False)
    assert payload["ids"] == [v for s in SPLITS for v, _ in splits[s]]
    assert bundle.train.inputs["audio"].dtype == torch.float16
    assert bundle.train.inputs["audio"].shape[1:] == (1024, 128)
    assert bundle.train.inputs["visual"].dtype == torch.uint8
    assert bundle.train.inputs["visual"].shape[1:] == (3, 3, 30, 40)  # 40×30 frames, as stored


def test_annotations_without_header_as_in_the_github_copy(tmp_path):
    splits = make_ave(tmp_path / "data", header=False)
    assert not (tmp_path / "data" / "Annotations.txt").read_text().startswith(AVE_HEADER)
    # a header line is also accepted at the top of a split file
    train = tmp_path / "data" / "trainSet.txt"
    train.write_text(f"{AVE_HEADER}\n\n{train.read_text()}")
    # a video in no split file needs no files, and its category is still a class (as stat_ave.txt)
    with (tmp_path / "data" / "Annotations.txt").open("a") as f:
        f.write(ave_line("Bark", "zzInNoSplit") + "\n")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(PROTOCOL)
    found, problems = scan.splits, scan.problems
    assert problems == []
    assert found == {s: [v for v, _ in splits[s]] for s in SPLITS}
    assert scan.class_names == sorted([*AVE_CATEGORIES, "Bark"])


def _drop_frames(data, video):
    shutil.rmtree(data / "IMAGE_KEPT_1_PER_SEC" / video)
    return [str(data / "IMAGE_KEPT_1_PER_SEC" / video), "missing"]


def _bad_wav(data, video):
    (data / "WAV" / f"{video}.wav").write_bytes(b"RIFF but not really a wav file")
    return [str(data / "WAV" / f"{video}.wav"), "unreadable audio"]


def _not_annotated(data, video):
    with (data / "trainSet.txt").open("a") as f:
        f.write(ave_line("Church bell", "zzNotThere1") + "\n")
    return [f"{data / 'trainSet.txt'}:9:", "zzNotThere1", "not in", "Annotations.txt"]


def _other_category(data, video):
    test = data / "testSet.txt"
    lines = test.read_text().splitlines()
    lines[1] = lines[1].replace("Frying (food)", "Church bell")
    test.write_text("\n".join(lines) + "\n")
    return [f"{test}:2:", "labelled 'Church bell'", "'Frying (food)'"]


def _malformed_split_line(data, video):
    val = data / "valSet.txt"
    val.write_text(val.read_text() + "Church bell&a0v2Xq_Z8aB good 0 10\n")
    return [f"{val}:3:", "malformed line", "5 fields"]


def _malformed_annotation(data, video):
    annotations = data / "Annotations.txt"
    lines = annotations.read_text().splitlines()
    lines[4] = lines[4].rsplit("&", 2)[0] + "&one&nine"
    annotations.write_text("\n".join(lines) + "\n")
    return [f"{annotations}:5:", "malformed line", "numbers"]


@pytest.mark.parametrize(
    "damage",
    [_drop_frames, _bad_wav, _not_annotated, _other_category, _malformed_split_line, _malformed_annotation],
)
def test_bad_data_is_reported_with_the_file_and_leaves_no_cache(tmp_path, damage):
    data = tmp_path / "data"
    splits = make_ave(data)
    expected = damage(data, splits["train"][2][0])
    a = adapter(data, tmp_path / "cache")
    problems = a.check(PROTOCOL)
    assert problems and any(all(part in p for part in expected) for p in problems), problems
    with pytest.raises(DataProblems) as info:
        a.prepare(PROTOCOL)
    assert expected[0] in str(info.value) and "\n" not in str(info.value)
    assert cache_files(tmp_path / "cache") == []


def test_problems_are_listed_together_and_the_cli_reports_them_without_a_traceback(tmp_path, capsys):
    data = tmp_path / "data"
    splits = make_ave(data)
    _drop_frames(data, splits["train"][0][0])
    _malformed_split_line(data, None)
    _not_annotated(data, None)
    problems = adapter(data, tmp_path / "cache").check(PROTOCOL)
    assert len(problems) == 3
    assert cli("data", "check", f"ave:{data}", "--cache-dir", str(tmp_path / "cache")) == 1
    out = capsys.readouterr()
    assert "valSet.txt:3:" in out.out and "trainSet.txt:9:" in out.out
    assert "Traceback" not in out.out + out.err
    assert cli("data", "prepare", f"ave:{data}", "--cache-dir", str(tmp_path / "cache")) != 0
    assert cache_files(tmp_path / "cache") == []


def test_missing_split_file_and_folders_are_named(tmp_path):
    data = tmp_path / "data"
    make_ave(data)
    (data / "valSet.txt").unlink()
    shutil.rmtree(data / "WAV")
    problems = adapter(data, tmp_path / "cache").check(PROTOCOL)
    assert any(str(data / "valSet.txt") in p and "missing" in p for p in problems)
    assert any(str(data / "WAV") in p and "missing folder" in p for p in problems)
    assert cli("data", "check", f"ave:{tmp_path / 'nope'}") == 2


def test_amst_split_files_option(tmp_path):
    data = tmp_path / "data"
    splits = make_ave(data)
    # like the AMST repository's files: the official split less one train video, whose files are
    # then not needed
    dropped, _ = splits["train"][1]
    amst = {s: [(v, c) for v, c in splits[s] if v != dropped] for s in SPLITS}
    write_ave_amst_split_files(tmp_path / "amst", amst)
    shutil.rmtree(data / "IMAGE_KEPT_1_PER_SEC" / dropped)
    (data / "WAV" / f"{dropped}.wav").unlink()
    a = adapter(data, tmp_path / "cache", split_dir=str(tmp_path / "amst"))
    assert a.check(PROTOCOL) == []
    assert a.split_name(PROTOCOL) == "amst-files"
    bundle = a.load(PROTOCOL)
    assert bundle.split_name == "amst-files"
    assert [len(getattr(bundle, s)) for s in SPLITS] == [len(amst[s]) for s in SPLITS]
    assert bundle.class_names == tuple(sorted(AVE_CATEGORIES))
    option = ["--set", f"ave.split_dir={tmp_path / 'amst'}", "--cache-dir", str(tmp_path / "cache")]
    assert cli("data", "check", f"ave:{data}", *option) == 0
    # the official split, which needs the dropped video, is a different cache (and a problem now)
    official = adapter(data, tmp_path / "cache").check(PROTOCOL)
    assert any(dropped in p and "missing" in p for p in official)

    # AMST lines are checked against Annotations.txt and for their format, by file and line
    train = tmp_path / "amst" / "my_train_ave.txt"
    lines = train.read_text().splitlines()
    lines[0] = lines[0].replace("Church bell", "Bark")
    lines.append("a0v1Xq_Z8aB Church bell")
    train.write_text("\n".join(lines) + "\n")
    problems = a.check(PROTOCOL)
    assert any(f"{train}:1:" in p and "labelled 'Bark'" in p for p in problems)
    assert any(f"{train}:{len(lines)}:" in p and "malformed" in p for p in problems)
    assert len(problems) == 2

    missing = adapter(data, tmp_path / "cache", split_dir=str(tmp_path / "nope")).check(PROTOCOL)
    assert any("ave.split_dir" in p and "my_train_ave.txt" in p for p in missing)


def test_a_video_annotated_with_two_categories_gives_two_samples(tmp_path):
    # as 45 videos of the real Annotations.txt (e.g. Banjo and Mandolin), here in two splits
    data = tmp_path / "data"
    splits = make_ave(data)
    video = "b9Twice_xYz"
    write_ave_video(data, video, seed=99)
    with (data / "Annotations.txt").open("a") as f:
        f.write(ave_line("Church bell", video) + "\n" + ave_line("Frying (food)", video) + "\n")
    with (data / "trainSet.txt").open("a") as f:
        f.write(ave_line("Church bell", video) + "\n")
    with (data / "testSet.txt").open("a") as f:
        f.write(ave_line("Frying (food)", video) + "\n")
    a = adapter(data, tmp_path / "cache")
    shared = "1 video\\(s\\) are annotated with several categories.*1 of them stand in two splits"
    with pytest.warns(UserWarning, match=shared):
        problems = a.check(PROTOCOL)
    assert problems == []
    with pytest.warns(UserWarning):
        bundle = a.load(PROTOCOL)
    assert len(bundle.train) == len(splits["train"]) + 1 and len(bundle.test) == len(splits["test"]) + 1
    assert bundle.class_names[bundle.train.labels[-1]] == "Church bell"
    assert bundle.class_names[bundle.test.labels[-1]] == "Frying (food)"
    assert torch.equal(bundle.train.inputs["audio"][-1], bundle.test.inputs["audio"][-1])  # same files
    with pytest.warns(UserWarning):
        records = {r.id for r in a.scan(PROTOCOL).records}
    assert {f"{video}@Church bell", f"{video}@Frying (food)"} <= records


def test_repeated_lines_are_warned_about_and_taken_as_given(tmp_path):
    data = tmp_path / "data"
    splits = make_ave(data)
    video, category = splits["train"][0]
    with (data / "valSet.txt").open("a") as f:  # in train and val: kept in both
        f.write(ave_line(category, video) + "\n")
    with (data / "testSet.txt").open("a") as f:  # twice in test: kept once
        f.write(ave_line(category, video) + "\n" + ave_line(category, video) + "\n")
    a = adapter(data, tmp_path / "cache")
    with pytest.warns(UserWarning) as caught:
        scan = a.scan(PROTOCOL)
        found, problems = scan.splits, scan.problems
    messages = [str(w.message) for w in caught]
    assert problems == []
    assert any(f"{data / 'testSet.txt'}:4:" in m and "listed again" in m for m in messages)
    assert any("1 sample(s) in both train and val" in m for m in messages)
    assert any("1 sample(s) in both train and test" in m for m in messages)
    assert found["val"][-1] == found["test"][-1] == video and len(found["test"]) == len(splits["test"]) + 1


def test_unknown_option_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="ave.split: ave has no option 'split'"):
        adapter(tmp_path, tmp_path / "cache", split="amst")


def test_cli_data_check_prepare_and_a_one_epoch_run_of_two_methods(tmp_path, capsys):
    make_ave(tmp_path / "ave")
    spec = f"ave:{tmp_path / 'ave'}"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert cli("data", "check", spec, "--profile", "smoke", *cache) == 0
    assert "no problems" in capsys.readouterr().out
    assert cli("data", "prepare", spec, "--profile", "smoke", *cache) == 0
    assert len(cache_files(tmp_path / "cache")) == 1
    runs = smoke_run(tmp_path, "naive,amst-alt", spec, *cache)
    stored = [json.loads(p.read_text()) for p in (tmp_path / "r" / "runs").glob("*.json")]
    runs = {r["method"]: r for r in stored}
    assert sorted(runs) == ["amst-alt", "naive"]
    assert all(r["split"] == "official" for r in runs.values())
    assert runs["amst-alt"]["method_resolved"]["skip"] == {"audio": 2, "visual": 1}
    assert len(cache_files(tmp_path / "cache")) == 1  # the run read the same cache
