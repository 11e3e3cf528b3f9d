"""Paper encoders on the CPU: seconds per training step of several settings, side by side in one
process (round-robin, so a machine whose speed drifts slows every setting alike), as ratios to the
default. Not a test: a measurement script for the README's performance section.

    python -m tests.benchmarks.cpu_paper_step --batch-size 8 --rounds 3 --steps 2

Settings: `naive` (joint step: both ResNet18 encoders, lsum head, SGD) as today (fp32, NCHW),
channels-last, bfloat16 autocast, both; and an AMST-Alt skip epoch (audio skipped, visual trained)
with the skipped encoder forwarded without a graph (`skipped_forward=official`, the default) or
not at all (`none`). Inputs are random tensors of the bench profile's shapes (audio [1, 1024, 128],
visual 3 × [3, 224, 224]), already in memory: no data movement or augmentation is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import statistics
import time
from contextlib import nullcontext

import torch

from amst_bench import registry
from amst_bench.data.tensors import Batch, DatasetBundle, TensorSplit
from amst_bench.options import build_config
from amst_bench.protocol import get_profile
from amst_bench.train.method import MethodContext
from amst_bench.train.speed import channels_last_inputs, channels_last_module
from amst_bench.train.trainer import encoder_factory

# name: (method, method options, channels_last, bf16 autocast, epoch)
SETTINGS = {
    "naive fp32 NCHW (today)": ("naive", {}, False, False, 0),
    "naive channels-last": ("naive", {}, True, False, 0),
    "naive bf16 autocast": ("naive", {}, False, True, 0),
    "naive channels-last + bf16": ("naive", {}, True, True, 0),
    "amst-alt skip epoch, skipped_forward=official (today)": ("amst-alt", {}, False, False, 1),
    "amst-alt skip epoch, skipped_forward=none": ("amst-alt", {"skipped_forward": "none"}, False, False, 1),
    "amst-alt skip epoch, none + channels-last + bf16": (
        "amst-alt", {"skipped_forward": "none"}, True, True, 1),
}
BASELINES = {"naive": "naive fp32 NCHW (today)",
             "amst-alt": "amst-alt skip epoch, skipped_forward=official (today)"}


def bundle_of(batch: Batch, protocol) -> DatasetBundle:
    split = TensorSplit(batch.inputs, batch.labels)
    return DatasetBundle(
        name="synthetic", modalities=("audio", "visual"), num_classes=6, train=split, val=split, test=split,
        default_skip={"audio": 3, "visual": 1},
        input_shapes={m: tuple(t.shape[1:]) for m, t in batch.inputs.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--only", default="", help="comma list of setting-name prefixes to run")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    protocol = dataclasses.replace(get_profile("bench"), batch_size=args.batch_size, device="cpu")
    gen = torch.Generator().manual_seed(0)
    b = args.batch_size
    batch = Batch({"audio": torch.randn(b, 1, 1024, 128, generator=gen),
                   "visual": torch.randn(b, 3, 3, 224, 224, generator=gen)},
                  torch.randint(0, 6, (b,), generator=gen))
    bundle = bundle_of(batch, protocol)
    chosen = {k: v for k, v in SETTINGS.items()
              if not args.only or any(k.startswith(p) for p in args.only.split(","))}
    runs = {}
    for name, (method, options, cl, bf16, epoch) in chosen.items():
        torch.manual_seed(0)
        cls = registry.methods.get(method)
        ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
        m = cls(build_config(cls, options), ctx)
        if cl:
            channels_last_module(m.model)
        inputs = channels_last_inputs(batch.inputs) if cl else batch.inputs
        runs[name] = (m, Batch(inputs, batch.labels), bf16, epoch)

    def step(name: str) -> None:
        m, bt, bf16, epoch = runs[name]
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with ctx:
            m.training_step(bt, epoch)

    for name in runs:  # warm-up: one untimed step each
        step(name)
    # Wall seconds and this process's CPU seconds (all its threads): on a loaded shared machine the
    # CPU seconds are the steadier figure, the wall seconds what a user waits.
    times: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    for r in range(args.rounds):
        for name in runs:
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / args.steps)
            cpu[name].append((time.process_time() - c0) / args.steps)
            print(f"round {r} {name}: {times[name][-1]:.2f} s/step wall, "
                  f"{cpu[name][-1]:.2f} CPU s/step", flush=True)
    machine = platform.processor() or platform.machine()
    print(f"\nmachine: {machine}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}; batch {b}, {args.rounds} rounds x {args.steps} steps")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print("| setting | wall s/step | ratio | CPU s/step | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, (method, *_rest) in chosen.items():
        base = BASELINES[method]
        cells = []
        for figures in (times, cpu):
            pairs = zip(figures[name], figures.get(base, figures[name]), strict=True)
            ratios = [t / tb for t, tb in pairs] if base in figures else []
            ratio = f"{statistics.median(ratios):.2f}" if ratios else "–"
            cells += [f"{statistics.median(figures[name]):.2f}", ratio]
        print(f"| {name} | {' | '.join(cells)} |")
    print("(medians over rounds; ratio: median of the per-round ratios to today's setting of the method)")


if __name__ == "__main__":
    main()
