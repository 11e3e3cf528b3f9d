"""MVSA-Single in its real layout (labelResultAll.txt, data/<id>.jpg, data/<id>.txt): the
MultiSentiNet cleaning, robust text reading, check, prepare (cache), load, the random and the AMST
split files, bad data, and a short run."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import amst_bench.datasets.mvsa  # noqa: F401  (registers `mvsa` in-process until its entry point exists)
from amst_bench.data.files import DataProblems
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import SPLITS
from amst_bench.datasets.mvsa import merge_labels
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import write_jpeg
from tests.helpers import cli, smoke_run
from tests.text_fixtures import make_text_model

HEADER = "ID\ttext,image"
# id → (text label, image label): every case of the rule, and two pairs it drops
PAIRS = {
    "1": ("positive", "positive"),
    "2": ("neutral", "positive"),
    "3": ("positive", "neutral"),
    "4": ("positive", "positive"),
    "5": ("positive", "positive"),
    "6": ("negative", "negative"),
    "7": ("neutral", "negative"),
    "8": ("negative", "neutral"),
    "9": ("negative", "negative"),
    "10": ("neutral", "neutral"),
    "11": ("neutral", "neutral"),
    "12": ("neutral", "neutral"),
    "13": ("neutral", "neutral"),
    "14": ("positive", "negative"),
    "15": ("negative", "positive"),
}
DROPPED = ("14", "15")
KEPT = {
    "1": "positive", "2": "positive", "3": "positive", "4": "positive", "5": "positive",
    "6": "negative", "7": "negative", "8": "negative", "9": "negative",
    "10": "neutral", "11": "neutral", "12": "neutral", "13": "neutral",
}  # fmt: skip
TEXTS = {
    "positive": "a happy day so good",
    "negative": "a sad night so bad",
    "neutral": "the cat sat on the mat",
}
LATIN1_ID, CRLF_ID = "4", "11"
pytestmark = pytest.mark.filterwarnings("ignore:mvsa. 1 text file.s. are not valid UTF-8")


def make_mvsa(root, pairs=PAIRS):
    """The unzipped MVSA_Single/ folder: labelResultAll.txt (header, then `<id>TAB<text>,<image>`)
    and data/<id>.jpg + data/<id>.txt. Text 4 is Latin-1 (not UTF-8), text 11 has CRLF line ends."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = [HEADER]
    for n, (sample, (text, image)) in enumerate(pairs.items()):
        lines.append(f"{sample}\t{text},{image}")
        write_jpeg(data / f"{sample}.jpg", seed=n)
        words = TEXTS[merge_labels(text, image) or "neutral"] + " dog" * (n % 3)
        (data / f"{sample}.txt").write_text(words + "\n")
    (data / f"{LATIN1_ID}.txt").write_bytes("caf\u00e9 happy day\n".encode("latin-1"))
    (data / f"{CRLF_ID}.txt").write_bytes(b"the cat\r\nsat on the mat\r\n")
    (root / "labelResultAll.txt").write_text("\n".join(lines) + "\n")


def write_amst_split_files(folder, parts):
    """The AMST repository's files (code/data/MVSA/my_*_mvsa.txt): lines `897.jpg positive`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train": "my_train_mvsa.txt", "val": "my_val_mvsa.txt", "test": "my_test_mvsa.txt"}
    for split, lines in parts.items():
        (folder / names[split]).write_text("".join(f"{line}\n" for line in lines))
    return {split: folder / name for split, name in names.items()}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_text_model(tmp_path_factory.mktemp("tm"))


@pytest.fixture
def protocol(model):
    return dataclasses.replace(get_profile("smoke"), text_model=str(model))


def adapter(root, cache, **options):
    options = {"text_max_length": "16", **options}
    return make_adapter(f"mvsa:{root}", DataLocations(cache_dir=cache, options={"mvsa": options}))


def cache_files(cache):
    return sorted(p.name for p in (cache / "mvsa").glob("*.pt")) if (cache / "mvsa").exists() else []


def test_multisentinet_rule():
    cases = {
        ("positive", "negative"): None,
        ("negative", "positive"): None,
        ("neutral", "positive"): "positive",
        ("negative", "neutral"): "negative",
        ("neutral", "neutral"): "neutral",
        ("positive", "positive"): "positive",
    }
    assert {pair: merge_labels(*pair) for pair in cases} == cases


def test_check_prepare_and_load(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    with pytest.warns(UserWarning, match="1 text file\\(s\\) are not valid UTF-8 and were read as ISO-8859"):
        assert a.check(protocol) == []
    scan = a.scan(protocol)
    records = scan.records
    assert {r.id: r.label for r in records} == KEPT  # conflicting pairs dropped, neutral gives way
    with pytest.warns(UserWarning, match="ISO-8859-1"):
        path = a.prepare(protocol)
    stamp = path.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reused: nothing decoded, nothing to warn about
        assert a.prepare(protocol) == path and path.stat().st_mtime_ns == stamp
    assert cache_files(tmp_path / "cache") == [path.name]
    bundle = a.load(protocol)
    assert bundle.class_names == ("negative", "neutral", "positive")
    assert bundle.modalities == ("text", "visual") and bundle.default_skip == {"text": 10, "visual": 1}
    assert bundle.split_name == "random-80/10/10"
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (10, 1, 2)  # 80/10/10 of 13
    payload = torch.load(path, weights_only=False)
    assert sorted(payload["ids"], key=int) == sorted(KEPT, key=int)
    assert [bundle.class_names[i] for i in payload["labels"].tolist()] == [KEPT[i] for i in payload["ids"]]
    text, visual = bundle.train.inputs["text"], bundle.train.inputs["visual"]
    assert text.dtype == torch.int32 and text.shape[1:] == (2, 16)
    assert visual.dtype == torch.uint8 and visual.shape[1:] == (1, 3, 30, 40)  # 40×30, as stored
    assert bundle.input_shapes == {"text": (2, 16), "visual": (1, 3, 32, 32)}
    assert payload["meta"]["settings"]["text"]["max_length"] == 16


def test_texts_are_read_robustly(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(protocol)
    records = {r.id: r for r in scan.records}
    assert a.text_of(records[LATIN1_ID]) == "caf\u00e9 happy day"  # not UTF-8: read as ISO-8859-1
    assert a.text_of(records[CRLF_ID]) == "the cat\nsat on the mat"  # line ends as text mode reads them
    assert a.text_of(records["1"]) == TEXTS["positive"]  # stripped
    tokens = a.decode(records["1"], "text", scan.text)
    assert tokens[1].sum().item() == 7  # <s> a happy day so good </s>, then padding to 16


def test_text_max_length_makes_a_new_cache_and_defaults_to_256(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = adapter(tmp_path / "data", tmp_path / "cache").prepare(protocol)
        second = adapter(tmp_path / "data", tmp_path / "cache", text_max_length="12").prepare(protocol)
    assert first != second and len(cache_files(tmp_path / "cache")) == 2
    assert torch.load(second, weights_only=False)["inputs"]["text"].shape[1:] == (2, 12)
    default = make_adapter(f"mvsa:{tmp_path / 'data'}", DataLocations(cache_dir=tmp_path / "c2"))
    default.scan(protocol)
    assert default.options.text_max_length == 256


def test_random_split_is_written_once_reused_and_disjoint(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    scan = a.scan(protocol)
    records, splits, problems = scan.records, scan.splits, scan.problems
    assert not problems
    folder = tmp_path / "cache" / "mvsa" / "splits" / "random-seed0"
    first = (folder / "train.txt").read_text().splitlines()[0]
    sample = first.split(".jpg ")[0]
    assert first == f"{sample}.jpg {KEPT[sample]}"  # the AMST format, `897.jpg positive`
    again = adapter(tmp_path / "data", tmp_path / "cache2").scan(protocol).splits
    assert again == splits  # same seed, same split, wherever it is drawn
    ids = [i for s in SPLITS for i in splits[s]]
    assert len(ids) == len(set(ids)) == len(records) == len(KEPT)
    other = adapter(tmp_path / "data", tmp_path / "cache", split_seed="1").scan(protocol).splits
    assert other != splits and (tmp_path / "cache" / "mvsa" / "splits" / "random-seed1").is_dir()


def test_official_split_files_are_read_as_given_and_overlap_warned(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    ids = sorted(KEPT, key=int)
    parts = {
        "train": [f"{i}.jpg {KEPT[i]}" for i in ids[:9]],
        "val": [f"{i}.jpg {KEPT[i]}" for i in ids[9:12]],
        "test": [f"{i}.jpg {KEPT[i]}" for i in ids[11:]],
    }
    write_amst_split_files(tmp_path / "amst", parts)
    a = adapter(tmp_path / "data", tmp_path / "cache", split="official", split_dir=str(tmp_path / "amst"))
    with pytest.warns(UserWarning, match="1 pair\\(s\\) in both val and test"):
        scan = a.scan(protocol)
        splits, problems = scan.splits, scan.problems
    assert not problems
    assert splits == {"train": ids[:9], "val": ids[9:12], "test": ids[11:]}  # file order, as given
    assert a.split_name(protocol) == "official-amst"
    # split_dir alone selects the official split
    alone = adapter(tmp_path / "data", tmp_path / "cache", split_dir=str(tmp_path / "amst"))
    assert alone.split_name(protocol) == "official-amst"
    with pytest.warns(UserWarning, match="in both val and test"):
        bundle = alone.load(protocol)
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (9, 3, 2)


def test_official_split_problems_name_file_and_line(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    parts = {
        "train": ["1.jpg positive", "2.jpg negative", "14.jpg positive", "99.jpg neutral", "3 positive"],
        "val": ["6.jpg Negative"],
    }
    files = write_amst_split_files(tmp_path / "amst", parts)
    a = adapter(tmp_path / "data", tmp_path / "cache", split="official", split_dir=str(tmp_path / "amst"))
    problems = a.check(protocol)
    train = str(files["train"])
    mismatch = "2.jpg labelled negative, labelResultAll.txt gives positive (text neutral, image positive)"
    assert f"{train}:2: {mismatch}" in problems
    assert any(p.startswith(f"{train}:3: 14.jpg is not a sample") and "disagree" in p for p in problems)
    assert f"{train}:4: 99.jpg is not in labelResultAll.txt" in problems
    assert any(p.startswith(f"{train}:5: malformed line") for p in problems)
    assert any(p.startswith(f"{files['val']}:1: unknown label 'Negative'") for p in problems)
    assert f"{files['test']}: missing" in problems
    assert any("the test split is empty" in p for p in problems)
    with pytest.raises(DataProblems):
        a.prepare(protocol)
    assert cache_files(tmp_path / "cache") == []
    nowhere = adapter(tmp_path / "data", tmp_path / "cache", split="official")
    assert any(p.startswith("--set mvsa.split_dir=: not a folder") for p in nowhere.check(protocol))


def test_bad_data_is_reported_with_file_names_and_leaves_no_cache(tmp_path, protocol):
    root = tmp_path / "data"
    make_mvsa(root)
    data = root / "data"
    (data / "2.jpg").unlink()  # kept pair without its image
    (data / "14.txt").unlink()  # a dropped pair's files are never read
    labels = root / "labelResultAll.txt"
    lines = labels.read_text().splitlines()
    lines[3:3] = ["16\tpositive", "17\thappy,positive", "1\tneutral,neutral"]
    labels.write_text("\n".join(lines) + "\n")
    write_jpeg(data / "16.jpg")
    write_jpeg(data / "17.jpg")
    a = adapter(root, tmp_path / "cache")
    problems = a.check(protocol)
    assert f"{data / '2.jpg'}: missing (visual of 2)" in problems
    assert any(p.startswith(f"{labels}:4: malformed line") for p in problems)
    assert f"{labels}:5: unknown label 'happy' for id 17 (expected negative, neutral, positive)" in problems
    assert f"{labels}:6: id 1 is listed again (first at line 2)" in problems
    assert not any(str(data / "14.txt") in p for p in problems)
    with pytest.raises(UserError) as info:
        a.prepare(protocol)
    assert "problem" in str(info.value) and "\n" not in str(info.value)
    assert cache_files(tmp_path / "cache") == []
    # with the structure fixed, unreadable image and text files are reported by name, still no cache
    make_mvsa(root)
    (data / "16.jpg").unlink()
    (data / "17.jpg").unlink()
    (data / "3.jpg").write_bytes(b"not a jpeg")
    (data / "5.txt").unlink()
    (data / "5.txt").mkdir()
    problems = a.check(protocol)
    assert len(problems) == 2
    assert any(p.startswith(f"{data / '3.jpg'}: unreadable image") for p in problems)
    assert any(p.startswith(f"{data / '5.txt'}: unreadable text") for p in problems)
    with pytest.raises(UserError, match="3.jpg"):
        a.prepare(protocol)
    assert cache_files(tmp_path / "cache") == []


def test_missing_label_file_and_folder_are_problems(tmp_path, protocol):
    (tmp_path / "data").mkdir()
    problems = adapter(tmp_path / "data", tmp_path / "cache").check(protocol)
    assert f"{tmp_path / 'data' / 'labelResultAll.txt'}: missing" in problems
    assert any(p.startswith(f"{tmp_path / 'data' / 'data'}: missing folder") for p in problems)


def test_unlabelled_images_are_ignored_with_a_warning(tmp_path, protocol):
    make_mvsa(tmp_path / "data")
    write_jpeg(tmp_path / "data" / "data" / "77.jpg")
    a = adapter(tmp_path / "data", tmp_path / "cache")
    with pytest.warns(UserWarning, match="1 image\\(s\\) .* have no line .* \\(e.g. 77.jpg\\); ignored"):
        scan = a.scan(protocol)
        records, problems = scan.records, scan.problems
    assert not problems and "77" not in {r.id for r in records}


def test_options_are_checked(tmp_path):
    with pytest.raises(UserError, match="mvsa.splt: mvsa has no option"):
        adapter(tmp_path, tmp_path, splt="official")
    with pytest.raises(UserError, match="expected one of random, official"):
        adapter(tmp_path, tmp_path, split="speaker")
    with pytest.raises(UserError, match="mvsa.split_dir applies to split=official, not split=random"):
        adapter(tmp_path, tmp_path, split="random", split_dir=str(tmp_path))


def test_cli_data_check_and_a_one_epoch_run_of_two_methods(tmp_path, model, capsys):
    root = tmp_path / "mvsa"
    make_mvsa(root)
    common = ["--text-model", str(model), "--set", "mvsa.text_max_length=16"]
    common += ["--cache-dir", str(tmp_path / "c")]
    assert cli("data", "check", f"mvsa:{root}", "--profile", "smoke", *common) == 0
    assert "no problems" in capsys.readouterr().out
    runs = smoke_run(tmp_path, "naive,amst-alt", f"mvsa:{root}", *common)
    assert sorted(r["method"] for r in runs) == ["amst-alt", "naive"]
    assert all(r["split"] == "random-80/10/10" for r in runs)
    assert len(cache_files(tmp_path / "c")) == 1  # check wrote none, the runs shared one cache


def test_missing_folder_is_one_clear_error(tmp_path):
    assert cli("data", "check", f"mvsa:{tmp_path / 'nope'}") == 2


def test_the_random_split_label_and_folder_name_the_seed_and_fractions(tmp_path):
    import dataclasses

    from amst_bench.protocol import get_profile

    protocol = get_profile("smoke")
    seeded = make_adapter(f"mvsa:{tmp_path}", DataLocations(cache_dir=tmp_path / "c",
                                                            options={"mvsa": {"split_seed": "3"}}))
    assert seeded.split_name(protocol) == "random-80/10/10-seed3"
    other = dataclasses.replace(protocol, split=(0.7, 0.15, 0.15))
    assert seeded.seeded_split_folder(other, "random", 3).name == "random-seed3-70-15-15"
