"""Issue 11 §3: a smoke epoch on a 2,000-clip audio-visual manifest against the synthetic smoke
epoch of as many samples, one process (amst_bench.bench_realdata). One round: it reports the
figures (extra_info, and printed with -s), it never fails on speed. AMST_BENCH_REALDATA_CLIPS
makes the manifest smaller for a quick look."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amst_bench.bench_realdata import DEFAULT_FOLDER, ManifestShape, compare

pytestmark = pytest.mark.bench


def test_smoke_epoch_real_against_synthetic(benchmark):
    clips = int(os.environ.get("AMST_BENCH_REALDATA_CLIPS", ManifestShape.clips))
    root = os.environ.get("AMST_BENCH_REALDATA", str(DEFAULT_FOLDER))
    comparison = benchmark.pedantic(compare, args=(Path(root), ManifestShape(clips=clips)),
                                    rounds=1, iterations=1)
    print("\n".join(comparison.lines()))
    benchmark.extra_info.update(
        clips=clips,
        cache_build_s=comparison.cache_build_s,
        settle_s=comparison.settle_s,
        real_warm_epoch_s=comparison.real.warm_whole,
        synthetic_warm_epoch_s=comparison.synthetic.warm_whole,
        ratio=comparison.ratio,
    )
    assert comparison.real.warm_whole > 0 and comparison.synthetic.warm_whole > 0

