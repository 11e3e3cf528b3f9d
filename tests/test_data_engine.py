"""The file-dataset engine: the tensor cache, the shared split-file reader, scans without state."""

from __future__ import annotations

import os

import pytest
import torch

from amst_bench.data.cache import CachedSample, TensorCache
from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.splits import read_split_entries, read_split_file
from amst_bench.protocol import get_profile
from tests.fixtures import make_cremad

PROTOCOL = get_profile("smoke")


def test_cache_key_covers_settings_split_and_files_and_saves_atomically(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"1234")
    cache = TensorCache(tmp_path / "cache" / "demo", "demo")
    samples = [CachedSample("a", "cat", {"audio": tmp_path / "a.wav"})]
    splits = {"train": ["a"], "val": [], "test": []}
    key = cache.key({"n": 1}, splits, samples)
    assert key == cache.key({"n": 1}, splits, samples) and len(key) == 16
    assert cache.key({"n": 2}, splits, samples) != key
    assert cache.key({"n": 1}, {"train": [], "val": ["a"], "test": []}, samples) != key
    assert cache.key({"n": 1}, splits, samples, extra="x\ny") != key
    os.utime(tmp_path / "a.wav", ns=(1, 1))
    assert cache.key({"n": 1}, splits, samples) != key  # a touched file is another cache
    path = cache.save(key, {"t": torch.arange(3)})
    assert path == tmp_path / "cache" / "demo" / f"{key}.pt" and cache.path(key) == path
    assert torch.equal(cache.load(key)["t"], torch.arange(3))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_shared_reader_names_file_and_line_and_warns_about_repeats(tmp_path):
    path = tmp_path / "split.txt"
    path.write_text("header\n\na.mp4 cat\nbroken\na.mp4 cat\na.mp4 dog\n")

    def parse(index, line):
        if index == 0:
            return None  # a header line
        parts = line.split()
        return (parts[0].removesuffix(".mp4"), parts[1]) if len(parts) == 2 else f"bad line {line!r}"

    problems: list[str] = []
    with pytest.warns(UserWarning, match=r"split.txt:5: a \(cat\) is listed again; ignored"):
        entries = read_split_entries(path, parse, problems, repeated=lambda i, label: f"{i} ({label})")
    assert [(e.number, e.id, e.label) for e in entries] == [(3, "a", "cat"), (6, "a", "dog")]
    assert problems == [f"{path}:4: bad line 'broken'"]
    assert read_split_entries(tmp_path / "none.txt", parse, problems) is None
    assert problems[-1] == f"{tmp_path / 'none.txt'}: missing"
    # the CREMA-D reader too: a repeated line is ignored with a warning, never trained twice
    path.write_text("1_A_SAD_XX.flv Sad\n1_A_SAD_XX.flv Sad\n")
    with pytest.warns(UserWarning, match=r"split.txt:2: 1_A_SAD_XX is listed again; ignored"):
        assert read_split_file(path, ".flv") == [("1_A_SAD_XX", "Sad")]


def test_scan_is_a_value_and_nothing_depends_on_the_order_of_calls(tmp_path):
    make_cremad(tmp_path / "data", clips_per_class=2)
    locations = DataLocations(cache_dir=tmp_path / "c", options={"cremad": {"split": "speaker"}})
    fresh = make_adapter(f"cremad:{tmp_path / 'data'}", locations)
    bundle = fresh.load(PROTOCOL)  # no scan first
    scan = make_adapter(f"cremad:{tmp_path / 'data'}", locations).scan(PROTOCOL)
    assert bundle.split_name == scan.split_name == fresh.split_name(PROTOCOL) == "speaker-80/10/10"
    assert list(bundle.class_names) == scan.class_names and scan.modalities == ("audio", "visual")
    assert scan.problems == [] and sorted(sum(scan.splits.values(), [])) == sorted(r.id for r in scan.records)
    assert not any(k.startswith("_") for k in vars(fresh))  # no state kept on the adapter
