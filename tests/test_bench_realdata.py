"""The real-data smoke benchmark (amst_bench.bench_realdata): its generated manifest is one the
manifest adapter reads, and bad flags are one line each, before any work."""

from __future__ import annotations

import pytest

from amst_bench.bench_realdata import ManifestShape, main, make_av_manifest


def test_the_generated_manifest_is_in_the_adapters_layout_and_is_made_once(tmp_path):
    from amst_bench.data.refs import DataLocations, DatasetRef, make_adapter
    from amst_bench.protocol import get_profile

    shape = ManifestShape(clips=12, classes=2, seconds=0.1, frame_height=24, frame_width=32)
    root = make_av_manifest(tmp_path, shape)
    adapter = make_adapter(DatasetRef("manifest", root), DataLocations(cache_dir=tmp_path / "cache"))
    assert adapter.check(get_profile("smoke"), decode=False) == []
    stamp = (root / "manifest.csv").stat().st_mtime_ns
    assert make_av_manifest(tmp_path, shape) == root and (root / "manifest.csv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "flags, says",
    [(["--set", "fbank_pool"], "--set fbank_pool: expected FIELD=VALUE"), (["--set", "nope=1"], "nope")],
)
def test_bad_flags_are_one_line_before_any_work(tmp_path, capsys, flags, says):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-root", str(tmp_path), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench_realdata: error: ") and says in err[0]
    assert not any(tmp_path.iterdir())  # nothing generated
