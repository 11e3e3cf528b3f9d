"""The compute floor of a timed grid: what one training epoch costs the plain joint model alone.

The floor is the joint model (the protocol's encoders, one per modality, and an `lsum` head, one
SGD per part, as `naive`) doing forward + cross-entropy + backward + optimiser step on batches that
are already on the device: the same batch sizes and number of steps as a training epoch of the
timed runs (`max_train_steps` included), under the same speed settings (precision, channels-last,
fused optimisers, torch.compile, TF32, cuDNN autotuning), but with no data movement, no
augmentation, no probes and no evaluation. `seconds per epoch, training only / floor` is then the
harness's own overhead for `naive`; a method that legitimately does more work per step (PMR's
prototypes, MLA's and AMST's per-modality steps, Shapley evaluation, AMST-Full's two modules) is
still measured against this plain joint model, and the timing table says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch, DatasetBundle, iterate_batches
from amst_bench.protocol import Protocol
from amst_bench.train.environment import resolve_device, seed_everything, synchronize, tf32
from amst_bench.train.models import build_head
from amst_bench.train.speed import apply_backend_flags, channels_last_inputs, speed_up_run
from amst_bench.train.trainer import effective_protocol, encoder_factory


@dataclass(frozen=True)
class Floor:
    """Mean seconds per training epoch of the plain joint model over `epochs` timed epochs of
    `steps` steps each (after one untimed warm-up step)."""

    seconds_per_epoch: float
    steps: int
    epochs: int
    # Process CPU seconds per epoch, on a CPU (None on an accelerator): the counterpart of a run's
    # `seconds_per_epoch.train_cpu`.
    cpu_seconds_per_epoch: float | None = None


def epoch_batch_sizes(train_size: int, batch_size: int, max_steps: int = 0) -> list[int]:
    """The batch sizes of one training epoch, in order: full batches, the last one partial (as
    iterate_batches cuts them), at most `max_steps` of them when that is set."""
    sizes = [min(batch_size, train_size - start) for start in range(0, train_size, batch_size)]
    return sizes[:max_steps] if max_steps else sizes


class JointModel(nn.Module):
    """Encoders + an `lsum` head: the plain joint model every method's floor is measured with."""

    def __init__(self, encoders: nn.ModuleDict, head: nn.Module):
        super().__init__()
        self.encoders, self.head = encoders, head

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        logits, _ = self.head({m: enc(inputs[m]) for m, enc in self.encoders.items()})
        return logits


def device_batches(bundle: DatasetBundle, protocol: Protocol, device: torch.device) -> list[Batch]:
    """One prepared training batch per distinct size of an epoch (real training inputs through the
    bundle's training preparation, once), on the device: the floor re-uses them every step."""
    sizes = epoch_batch_sizes(len(bundle.train), protocol.batch_size, protocol.max_train_steps)
    train = bundle.train.to(device)
    first = next(iterate_batches(train, protocol.batch_size, prepare=bundle.prepare, train=True))
    by_size = {len(first): first}
    if sizes[-1] not in by_size:  # the last, partial batch of an epoch
        cut = Batch({m: x[: sizes[-1]] for m, x in first.inputs.items()}, first.labels[: sizes[-1]])
        by_size[sizes[-1]] = cut
    batches = [by_size[s] for s in sizes]
    if protocol.channels_last:
        batches = [Batch(channels_last_inputs(b.inputs), b.labels) for b in batches]
    return batches


@dataclass
class FloorModel:
    """The plain joint model built for a bundle and protocol: its training `step` (forward, loss,
    backward, optimiser step), one epoch's `batches` on the device, and the effective protocol.
    Run steps inside `tf32(True if protocol.tf32 else None)`, as the timed runs do."""

    step: Callable[[Batch], None]
    batches: list[Batch]
    device: torch.device
    protocol: Protocol


def floor_model(bundle: DatasetBundle, protocol: Protocol, seed: int = 0) -> FloorModel:
    """Build the plain joint model (see the module docstring) with the encoders the trainer builds for
    this bundle and protocol, under its speed settings; shared by the floor and the kernel profiler
    (train/profiler.py)."""
    protocol = effective_protocol(protocol, bundle)
    if protocol.cpu_threads and torch.get_num_threads() != protocol.cpu_threads:
        torch.set_num_threads(protocol.cpu_threads)  # as the runs have it (runner.use_cpu_threads)
    make_encoder = encoder_factory(bundle, protocol)
    device = resolve_device(protocol.device)
    seed_everything(seed)
    apply_backend_flags(protocol)
    modalities = bundle.modalities
    encoders = nn.ModuleDict({m: make_encoder(m) for m in modalities})
    head = build_head("lsum", modalities, protocol.embedding_dim, bundle.num_classes)
    model = JointModel(encoders, head).to(device).train()
    opt = protocol.optimizer
    optimizers = [
        torch.optim.SGD(part.parameters(), lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
        for part in (encoders, head)
    ]
    batches = device_batches(bundle, protocol, device)
    speed_up_run(protocol, device, optimizers, make_encoder.made, lambda: batches[0].inputs)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=protocol.precision == "bf16")

    def step(batch: Batch) -> None:
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(batch.inputs), batch.labels)
        loss.backward()
        for o in optimizers:
            o.step()

    return FloorModel(step, batches, device, protocol)


def measure_floor(bundle: DatasetBundle, protocol: Protocol, epochs: int = 3, seed: int = 0) -> Floor:
    """Time the plain joint model over `epochs` epochs' worth of steps (see the module docstring),
    with the encoders the trainer builds for this bundle and protocol."""
    built = floor_model(bundle, protocol, seed)
    step, batches, device = built.step, built.batches, built.device
    with tf32(True if built.protocol.tf32 else None):
        step(batches[0])  # warm-up: kernel selection, allocator growth, compilation
        synchronize(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(epochs):
            for batch in batches:
                step(batch)
        synchronize(device)
        seconds = (time.perf_counter() - start) / epochs
        cpu = (time.process_time() - cpu_start) / epochs if device.type == "cpu" else None
    return Floor(seconds, len(batches), epochs, cpu)
