"""The generic manifest adapter: any folder described by manifest.csv."""

from __future__ import annotations

import dataclasses

import pytest

from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import write_frames, write_jpeg, write_wav
from tests.helpers import cli, smoke_run

PROTOCOL = get_profile("smoke")


def make_manifest(
    root,
    columns=("audio", "visual"),
    per_class=4,
    labels=("cat", "dog", "bird"),
    with_split=False,
    frames_as_folder=True,
):
    rows = []
    for c, label in enumerate(labels):
        for k in range(per_class):
            sid = f"{label}{k}"
            row = {"id": sid, "label": label}
            if "audio" in columns:
                write_wav(root / "wav" / f"{sid}.wav", freq=300 + 50 * c, seed=len(rows))
                row["audio"] = f"wav/{sid}.wav"
            if "visual" in columns:
                if frames_as_folder:
                    write_frames(root / "frames" / sid, 3, seed=len(rows))
                    row["visual"] = f"frames/{sid}"
                else:
                    write_jpeg(root / "img" / f"{sid}.jpg", seed=len(rows))
                    row["visual"] = f"img/{sid}.jpg"
            if with_split:
                row["split"] = ["train", "train", "val", "test"][k % 4]
            rows.append(row)
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(r[h] for h in header) for r in rows]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return rows


def adapter(root, cache):
    return make_adapter(f"manifest:{root}", DataLocations(cache_dir=cache))


def cache_files(cache):
    return sorted((cache / "manifest").glob("*.pt")) if (cache / "manifest").exists() else []


def test_audio_visual_manifest_prepares_and_loads(tmp_path):
    rows = make_manifest(tmp_path / "d")
    a = adapter(tmp_path / "d", tmp_path / "c")
    assert a.check(PROTOCOL) == []
    bundle = a.load(PROTOCOL)
    assert bundle.modalities == ("audio", "visual")
    assert bundle.class_names == ("bird", "cat", "dog")  # labels, sorted
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == len(rows)
    assert bundle.split_name == "random-80/10/10"


def test_split_column_is_used_as_given(tmp_path):
    make_manifest(tmp_path / "d", with_split=True)
    a = adapter(tmp_path / "d", tmp_path / "c")
    scan = a.scan(PROTOCOL)
    splits, problems = scan.splits, scan.problems
    assert not problems
    assert splits["val"] == ["bird2", "cat2", "dog2"] and splits["test"] == ["bird3", "cat3", "dog3"]
    assert scan.split_name == "manifest"


def test_visual_and_text_manifest(tmp_path):
    from tests.text_fixtures import make_text_model

    rows = ["id,label,visual,text"]
    for c, label in enumerate(("neg", "pos")):
        for k in range(5):
            sid = f"{label}{k}"
            write_jpeg(tmp_path / "d" / "img" / f"{sid}.jpg", seed=10 * c + k)
            (tmp_path / "d" / f"{sid}.txt").write_text(["a sad night", "a happy day"][c])
            rows.append(f"{sid},{label},img/{sid}.jpg,{sid}.txt")
    (tmp_path / "d" / "manifest.csv").write_text("\n".join(rows) + "\n")
    protocol = dataclasses.replace(PROTOCOL, text_model=str(make_text_model(tmp_path / "tm")))
    bundle = adapter(tmp_path / "d", tmp_path / "c").load(protocol)
    assert bundle.modalities == ("text", "visual")
    assert bundle.train.inputs["visual"].shape[1:] == (1, 3, 30, 40)  # 40×30 images, as stored
    assert bundle.train.inputs["text"].shape[1:] == (2, 128) and bundle.train.inputs["text"].dtype.is_signed


def test_single_images_as_visual(tmp_path):
    make_manifest(tmp_path / "d", columns=("visual",), frames_as_folder=False)
    bundle = adapter(tmp_path / "d", tmp_path / "c").load(PROTOCOL)
    assert bundle.modalities == ("visual",)
    assert bundle.train.inputs["visual"].shape[1:] == (1, 3, 30, 40)  # 40×30 images, as stored


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root: (root / "manifest.csv").unlink(), "manifest.csv: missing"),
        (
            lambda root: (root / "manifest.csv").write_text("id,audio\na,wav/cat0.wav\n"),
            "missing column(s) label",
        ),
        (lambda root: (root / "manifest.csv").write_text("id,label,smell\na,cat,x\n"), "no modality column"),
        (lambda root: (root / "wav" / "cat1.wav").unlink(), "cat1.wav: missing"),
        (lambda root: (root / "wav" / "cat1.wav").write_bytes(b"garbage"), "cat1.wav: unreadable audio"),
        (
            lambda root: (root / "frames" / "dog0" / "00001.jpg").write_bytes(b"garbage"),
            "00001.jpg: unreadable image",
        ),
        (
            lambda root: (root / "manifest.csv").write_text(
                (root / "manifest.csv").read_text().replace("\ncat1,", "\ncat0,")
            ),
            "repeated id 'cat0'",
        ),
        (
            lambda root: (root / "manifest.csv").write_text(
                "id,label,audio,split\n" + "".join(f"x{i},cat,wav/cat0.wav,train\n" for i in range(3))
            ),
            "the val split is empty",
        ),
    ],
)
def test_bad_input_names_the_problem_and_leaves_no_cache(tmp_path, breakage, message):
    make_manifest(tmp_path / "d")
    breakage(tmp_path / "d")
    a = adapter(tmp_path / "d", tmp_path / "c")
    problems = a.check(PROTOCOL)
    assert any(message in p for p in problems), problems
    with pytest.raises(UserError, match="problem"):
        a.prepare(PROTOCOL)
    assert cache_files(tmp_path / "c") == []


def test_cli_runs_two_methods_on_a_manifest(tmp_path):
    make_manifest(tmp_path / "d", per_class=5)
    spec = f"manifest:{tmp_path / 'd'}"
    assert cli("data", "check", spec) == 0
    runs = smoke_run(tmp_path, "naive,amst-alt", spec, "--cache-dir", str(tmp_path / "c"))
    assert sorted(r["method"] for r in runs) == ["amst-alt", "naive"]
    assert all(r["dataset"] == "manifest" for r in runs)  # the registered name; the path is provenance


def test_bad_option_value_is_one_line_naming_the_flag(tmp_path, capsys):
    make_manifest(tmp_path / "d", per_class=1)
    locations = DataLocations(cache_dir=tmp_path / "c", options={"manifest": {"split_seed": "abc"}})
    with pytest.raises(UserError, match=r"^--set manifest.split_seed: expected an integer, got 'abc'$"):
        make_adapter(f"manifest:{tmp_path / 'd'}", locations)
    spec = f"manifest:{tmp_path / 'd'}"
    assert cli("data", "check", spec, "--set", "manifest.split_seed=abc") == 2
    assert cli("data", "check", spec, "--set", "manifest.splt=1") == 2
    out = "".join(capsys.readouterr())
    assert "Traceback" not in out
    assert "--set manifest.splt: manifest has no option 'splt' (settable: split_seed, text_max_length)" in out


def test_resolved_options_are_every_option_with_its_default(tmp_path):
    a = make_adapter(
        f"manifest:{tmp_path}", DataLocations(cache_dir=tmp_path, options={"manifest": {"split_seed": "3"}})
    )
    assert a.resolved_options() == {"split_seed": 3, "text_max_length": 128}


def test_the_bundle_records_the_resolved_options(tmp_path):
    make_manifest(tmp_path / "d")
    locations = DataLocations(cache_dir=tmp_path / "c", options={"manifest": {"split_seed": "2"}})
    bundle = make_adapter(f"manifest:{tmp_path / 'd'}", locations).load(PROTOCOL)
    assert bundle.options == {"split_seed": 2, "text_max_length": 128}
    assert bundle.describe()["options"] == bundle.options  # the result's dataset_info holds them


def test_every_adapter_declares_what_it_does(tmp_path):
    from amst_bench import registry
    from amst_bench.data.adapter import DatasetAdapter

    for name in registry.datasets.names():
        cls = registry.datasets.get(name)
        assert issubclass(cls, DatasetAdapter), name
        assert cls.reads_files == (not name.startswith("synthetic")), name
    synthetic = registry.datasets.get("synthetic")()
    assert synthetic.check(PROTOCOL) == [] and synthetic.prepare(PROTOCOL) is None
    assert synthetic.resolved_options() == {}
    with pytest.raises(UserError, match="--set synthetic.samples: synthetic has no option 'samples'"):
        make_adapter("synthetic", DataLocations(options={"synthetic": {"samples": "9"}}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "manifest.csv: empty file"),
        (b"id,label,audio\n", "manifest.csv: no samples, only the header line"),
    ],
)
def test_an_empty_manifest_is_one_line_naming_the_file(tmp_path, content, message, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.csv").write_bytes(content)
    a = adapter(tmp_path / "d", tmp_path / "c")
    assert any(message in p for p in a.check(PROTOCOL))
    with pytest.raises(UserError, match=message) as info:
        a.prepare(PROTOCOL)
    assert "\n" not in str(info.value)
    assert cli("data", "check", f"manifest:{tmp_path / 'd'}") == 1
    assert "Traceback" not in "".join(capsys.readouterr())


def _rewrite(root, change):
    path = root / "manifest.csv"
    path.write_text(change(path.read_text()))


def test_labels_are_read_without_surrounding_spaces(tmp_path):
    make_manifest(tmp_path / "d", labels=("high", "low"))
    _rewrite(tmp_path / "d", lambda text: text.replace("high0,high,", "high0, high ,"))
    bundle = adapter(tmp_path / "d", tmp_path / "c").load(PROTOCOL)
    assert bundle.class_names == ("high", "low")


def test_a_class_with_a_single_sample_is_refused_naming_it(tmp_path):
    make_manifest(tmp_path / "d")
    _rewrite(tmp_path / "d", lambda text: text.replace("dog0,dog,", "dog0,wolf,"))
    problems = adapter(tmp_path / "d", tmp_path / "c").check(PROTOCOL)
    assert any("class 'wolf' has a single sample" in p for p in problems), problems


def test_an_empty_path_is_reported_with_line_and_id(tmp_path):
    make_manifest(tmp_path / "d")
    _rewrite(tmp_path / "d", lambda text: text.replace("\ncat1,cat,wav/cat1.wav,", "\n\ncat1,cat,,"))
    a = adapter(tmp_path / "d", tmp_path / "c")
    problems = a.check(PROTOCOL)
    # the blank line before it is counted: line 4 of the file
    assert any(p.endswith("manifest.csv line 4 (id cat1): empty 'audio' path") for p in problems), problems
    assert cache_files(tmp_path / "c") == []


def test_a_manifest_with_a_byte_order_mark_and_windows_line_ends_is_read(tmp_path):
    make_manifest(tmp_path / "d", with_split=True)
    plain = adapter(tmp_path / "d", tmp_path / "c").scan(PROTOCOL)
    path = tmp_path / "d" / "manifest.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_text().replace("\n", "\r\n").encode())
    scan = adapter(tmp_path / "d", tmp_path / "c").scan(PROTOCOL)
    assert scan.problems == [] and scan.splits == plain.splits
    assert [(r.id, r.label, r.sources, r.split) for r in scan.records] == [
        (r.id, r.label, r.sources, r.split) for r in plain.records
    ]


def test_an_unknown_split_value_is_refused_naming_the_line(tmp_path):
    make_manifest(tmp_path / "d", with_split=True)
    _rewrite(tmp_path / "d", lambda text: text.replace("frames/cat2,val\n", "frames/cat2,dev\n"))
    problems = adapter(tmp_path / "d", tmp_path / "c").check(PROTOCOL)
    expected = "manifest.csv:4: split 'dev'; expected train, val or test"
    assert any(p.endswith(expected) for p in problems), problems


def test_the_split_label_names_the_seed_so_differently_drawn_splits_are_never_pooled(tmp_path):
    from amst_bench.protocol import get_profile

    protocol = get_profile("smoke")
    seeded = make_adapter(f"manifest:{tmp_path}", DataLocations(options={"manifest": {"split_seed": "3"}}))
    assert adapter(tmp_path, tmp_path / "c").split_name(protocol) == "random-80/10/10"
    assert seeded.split_name(protocol) == "random-80/10/10-seed3"
