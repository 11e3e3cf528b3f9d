"""Smoke profile on real data against synthetic data: the issue-11 §3 benchmark.

Generates (once, into a cache folder outside the repository) an audio-visual manifest in the
manifest adapter's on-disk layout with realistic sizes (per clip a 16 kHz WAV of a few seconds,
which the official fbank pads to 1024 × 128, and 3 JPEG frames of 224² or larger), then, in one
process, times the cache build, a cold and a warm smoke epoch on it, and warm smoke epochs on
synthetic data with the same number of samples, and prints them with the ratio.
`python -m amst_bench.bench_realdata --help`; `tests/benchmarks/test_bench_smoke_epoch.py` runs it
under pytest-benchmark. Not a pass/fail timing test: it reports figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "amst-bench-realdata"


@dataclass(frozen=True)
class ManifestShape:
    """What the generated clips look like (CREMA-D-like by default: 6 classes, ~3 s clips)."""

    clips: int = 2000
    classes: int = 6
    seconds: float = 3.0
    sample_rate: int = 16000
    frames: int = 3
    frame_height: int = 224
    frame_width: int = 224
    seed: int = 0

    @property
    def name(self) -> str:
        return (
            f"av{self.clips}-c{self.classes}-{self.seconds:g}s{self.sample_rate}-"
            f"f{self.frames}x{self.frame_height}x{self.frame_width}-s{self.seed}"
        )


def make_av_manifest(parent: Path, shape: ManifestShape = ManifestShape()) -> Path:
    """The manifest folder for `shape` under `parent`, generated unless a finished one is there
    (manifest.csv is written last and atomically, so a cut-short generation is redone)."""
    import numpy as np
    import soundfile
    from PIL import Image

    from amst_bench.atomic import atomic_write_text

    root = parent / shape.name
    if (root / "manifest.csv").is_file():
        return root
    rng = np.random.default_rng(shape.seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rows = [["id", "label", "audio", "visual"]]
    t = np.arange(int(shape.seconds * shape.sample_rate)) / shape.sample_rate
    for i in range(shape.clips):
        clip, label = f"clip{i:05d}", i % shape.classes
        tone = 0.3 * np.sin(2 * np.pi * (220 + 60 * label) * t) + 0.05 * rng.standard_normal(t.size)
        soundfile.write(root / "audio" / f"{clip}.wav", tone.astype(np.float32), shape.sample_rate)
        folder = root / "frames" / clip
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(shape.frames):
            base = rng.integers(0, 256, (shape.frame_height // 8, shape.frame_width // 8, 3), dtype=np.uint8)
            image = Image.fromarray(base).resize((shape.frame_width, shape.frame_height), Image.BILINEAR)
            image.save(folder / f"{k + 1:05d}.jpg", quality=90)
        rows.append([clip, f"class{label}", f"audio/{clip}.wav", f"frames/{clip}"])
    text = "".join(",".join(r) + "\n" for r in rows)
    atomic_write_text(root / "manifest.csv", text)
    return root


@dataclass
class EpochFigures:
    """Seconds of one dataset's smoke epochs: training only and whole epoch (with evaluation)."""

    train: list[float]
    whole: list[float]

    @property
    def warm_train(self) -> float:
        return min(self.train[1:]) if len(self.train) > 1 else self.train[0]

    @property
    def warm_whole(self) -> float:
        return min(self.whole[1:]) if len(self.whole) > 1 else self.whole[0]


@dataclass
class Comparison:
    clips: int
    cache_build_s: float
    cache_load_s: float
    settle_s: float  # the input budget's once-per-split step (InputBudget.settle), all three splits
    real: EpochFigures
    synthetic: EpochFigures
    method: str
    threads: int

    @property
    def ratio(self) -> float:
        return self.real.warm_whole / self.synthetic.warm_whole

    def lines(self) -> list[str]:
        """The figures, as printed; epochs come after the settle step, so none of them pays it."""
        def fmt(xs: list[float]) -> str:
            return ", ".join(f"{x:.2f}" for x in xs)

        return [
            f"smoke epochs of {self.method}, {self.clips} samples, {self.threads} CPU thread(s)",
            f"  real manifest: cache build {self.cache_build_s:.1f} s, cache load {self.cache_load_s:.2f} s, "
            f"settle {self.settle_s:.2f} s",
            f"  real manifest: whole epochs {fmt(self.real.whole)} s (train {fmt(self.real.train)})",
            f"  synthetic:     whole epochs {fmt(self.synthetic.whole)} s "
            f"(train {fmt(self.synthetic.train)})",
            f"  warm whole epoch: real {self.real.warm_whole:.2f} s, synthetic "
            f"{self.synthetic.warm_whole:.2f} s, ratio {self.ratio:.2f}x",
        ]


def smoke_epochs(bundle, method: str, epochs: int, protocol) -> EpochFigures:
    """`epochs` smoke epochs of `method` on `bundle` (seed 0), in a throw-away results folder."""
    from amst_bench import registry
    from amst_bench.options import build_config
    from amst_bench.report.results import ResultStore
    from amst_bench.train.runspec import RunSpec
    from amst_bench.train.trainer import Trainer

    cls = registry.methods.get(method)
    protocol = dataclasses.replace(protocol, epochs=epochs, seeds=(0,))
    spec = RunSpec(cls, build_config(cls, {}), bundle.name, 0, protocol)
    with tempfile.TemporaryDirectory(prefix="amst-bench-realdata-") as scratch:
        result = Trainer(spec, bundle, ResultStore(scratch)).run()
    history = result["curves"]
    return EpochFigures(history["train_seconds"], history["epoch_seconds"])


def compare(
    data_root: Path = DEFAULT_FOLDER,
    shape: ManifestShape = ManifestShape(),
    method: str = "naive",
    epochs: int = 3,
    overrides: dict[str, str] | None = None,
) -> Comparison:
    """Cache build, then `epochs` smoke epochs on the real manifest and on synthetic data of as
    many samples, in this process (the first epoch of each is cold). `overrides` are the smoke
    protocol's `--set` fields (e.g. another input budget)."""
    from amst_bench import registry
    from amst_bench.data.refs import DataLocations, DatasetRef, make_adapter
    from amst_bench.protocol import apply_overrides, get_profile
    from amst_bench.runner import use_cpu_threads

    protocol = apply_overrides(get_profile("smoke"), overrides or {})
    use_cpu_threads(protocol.cpu_threads)
    root = make_av_manifest(data_root, shape)
    adapter = make_adapter(DatasetRef("manifest", root), DataLocations(cache_dir=data_root / "cache"))
    t0 = time.perf_counter()
    adapter.prepare(protocol)
    t1 = time.perf_counter()
    real = adapter.load(protocol)
    t2 = time.perf_counter()
    for split in (real.train, real.val, real.test):  # what the first epoch would do, timed apart
        split.settled(real.prepare)
    t3 = time.perf_counter()
    synthetic = registry.datasets.get("synthetic")().load(
        dataclasses.replace(protocol, synthetic_samples=shape.clips)
    )
    synthetic.name = "synthetic"
    return Comparison(
        clips=shape.clips,
        cache_build_s=t1 - t0,
        cache_load_s=t2 - t1,
        settle_s=t3 - t2,
        real=smoke_epochs(real, method, epochs, protocol),
        synthetic=smoke_epochs(synthetic, method, epochs, protocol),
        method=method,
        threads=protocol.cpu_threads,
    )


def refuse(message: str) -> NoReturn:
    """A user mistake: one line on stderr, exit 2, as the harness's own commands."""
    print(f"bench_realdata: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    from amst_bench.errors import UserError
    from amst_bench.protocol import apply_overrides, get_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(os.environ.get("AMST_BENCH_REALDATA", DEFAULT_FOLDER))
    parser.add_argument("--data-root", type=Path, default=default_root, help="generated data and its cache")
    parser.add_argument("--clips", type=int, default=ManifestShape.clips)
    parser.add_argument("--frame-size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--method", default="naive")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a smoke-protocol override, e.g. fbank_pool=8 (repeatable)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the whole comparison here")
    args = parser.parse_args(argv)
    shape = ManifestShape(clips=args.clips, frame_height=args.frame_size[0], frame_width=args.frame_size[1])
    malformed = [item for item in args.set if "=" not in item]
    if malformed:
        refuse(f"--set {malformed[0]}: expected FIELD=VALUE")
    overrides = dict(item.split("=", 1) for item in args.set)
    try:
        apply_overrides(get_profile("smoke"), overrides)  # every bad field named before any work
    except UserError as exc:
        refuse(str(exc))
    run = functools.partial(compare, args.data_root, shape, args.method, args.epochs, overrides)
    try:
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            comparison = profiler.runcall(run)
            profiler.dump_stats(args.profile)
        else:
            comparison = run()
    except UserError as exc:  # e.g. an unknown --method, or too few clips for every class
        refuse(str(exc))
    print("\n".join(comparison.lines()))


if __name__ == "__main__":
    main()
