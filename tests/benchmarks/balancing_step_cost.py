"""What a balancing method's training step costs next to `naive`: seconds per step, side by side in
one process (round-robin, so a machine whose speed drifts slows every method alike), as ratios to
naive. Not a test: a measurement script.

    python -m tests.benchmarks.balancing_step_cost --encoders tiny --dataset synthetic-avt
    python -m tests.benchmarks.balancing_step_cost --encoders paper --batch-size 8 --rounds 3

Each method steps at an epoch where its mechanism runs (OPM after its warm-up, every other at epoch
0: inside AGM's and CML's windows). `tiny`: the smoke profile's encoders on a batch of the synthetic
dataset; `paper`: ResNet18 encoders on random tensors of the bench profile's audio-visual shapes
([1, 1024, 128] fbank, 3 × [3, 224, 224] frames). Inputs are already in memory: no data movement or
augmentation is timed, nor validation (AGM and LFM do no extra work there).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch

from amst_bench import registry
from amst_bench.data.tensors import Batch, DatasetBundle, TensorSplit, iterate_batches
from amst_bench.options import build_config
from amst_bench.protocol import get_profile
from amst_bench.train.method import MethodContext
from amst_bench.train.trainer import encoder_factory

ACTIVE_EPOCH = {"opm": 6}  # the first epoch after OPM's warm-up; 0 for the others


def synthetic_batch(dataset: str, batch_size: int) -> tuple[DatasetBundle, Batch, object]:
    protocol = dataclasses.replace(get_profile("smoke"), device="cpu")
    bundle = registry.datasets.get(dataset)().load(protocol)
    bundle.name = dataset
    return bundle, next(iterate_batches(bundle.train, batch_size)), protocol


def paper_batch(batch_size: int) -> tuple[DatasetBundle, Batch, object]:
    protocol = dataclasses.replace(get_profile("bench"), batch_size=batch_size, device="cpu")
    gen = torch.Generator().manual_seed(0)
    batch = Batch({"audio": torch.randn(batch_size, 1, 1024, 128, generator=gen),
                   "visual": torch.randn(batch_size, 3, 3, 224, 224, generator=gen)},
                  torch.randint(0, 6, (batch_size,), generator=gen))
    split = TensorSplit(batch.inputs, batch.labels)
    bundle = DatasetBundle(
        name="synthetic", modalities=("audio", "visual"), num_classes=6, train=split, val=split,
        test=split, default_skip={"audio": 3, "visual": 1},
        input_shapes={m: tuple(t.shape[1:]) for m, t in batch.inputs.items()},
    )
    return bundle, batch, protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="naive,agm,mmcosine,opm,cml,lfm")
    parser.add_argument("--encoders", choices=("tiny", "paper"), default="tiny")
    parser.add_argument("--dataset", default="synthetic", help="tiny encoders: synthetic or synthetic-avt")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per method per round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the smoke profile uses 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.encoders == "paper":
        bundle, batch, protocol = paper_batch(args.batch_size)
    else:
        bundle, batch, protocol = synthetic_batch(args.dataset, args.batch_size)
    names = args.methods.split(",")
    methods = {}
    for name in names:
        torch.manual_seed(0)
        cls = registry.methods.get(name)
        ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
        methods[name] = cls(build_config(cls, {}), ctx)

    def step(name: str) -> None:
        methods[name].training_step(batch, ACTIVE_EPOCH.get(name, 0))

    for name in names:  # warm-up: one untimed step each
        step(name)
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / args.steps)
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"{args.encoders} encoders on {bundle.name} ({', '.join(bundle.modalities)}), batch {len(batch)}, "
          f"{args.rounds} rounds x {args.steps} steps")
    print("| method | s/step (median) | ratio to naive (median of per-round ratios) |")
    print("| --- | --- | --- |")
    for name in names:
        ratios = [t / b for t, b in zip(times[name], times.get("naive", []), strict=False)]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "–"
        print(f"| {name} | {statistics.median(times[name]):.4f} | {ratio} |")


if __name__ == "__main__":
    main()
