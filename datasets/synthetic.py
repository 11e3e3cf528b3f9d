"""Synthetic audio-visual(-text) data: the embedded default, generated in memory from a seed.

The imbalance is built in, so balancing methods have something to fix:
  audio   a [1, 16, 16] 'spectrogram' with a strong class pattern: learnt in a few epochs, but
          only `audio_reliability` of the clips carry their own class (the rest another class's)
  visual  3 frames of [3, 16, 16] with a weak class pattern under noise: learnt slowly, but
          always carries the true class
  text    (synthetic-avt only) 12 tokens, two of them class-specific in 80% of samples
So audio dominates early joint training while visual holds the information audio lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amst_bench.data.adapter import DatasetAdapter, Progress
from amst_bench.data.tensors import DatasetBundle, TensorSplit
from amst_bench.protocol import Protocol
from amst_bench.registry import register_dataset


@dataclass(frozen=True)
class SyntheticSpec:
    num_classes: int = 6
    generator_seed: int = 1234
    audio_amplitude: float = 1.0
    audio_reliability: float = 0.7
    visual_amplitude: float = 0.2
    frames: int = 3
    audio_shape: tuple[int, int] = (16, 16)
    image_size: int = 16
    text_length: int = 12
    text_vocab_size: int = 64
    text_reliability: float = 0.8


def _patterns(gen: torch.Generator, count: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Random ±1 patterns on a 16×16 grid, blurred a little so that small convolutions pick them
    up, then stretched to the requested size (large inputs hold the same coarse pattern)."""
    grid = (16, 16)
    raw = torch.randint(0, 2, (count, *shape[:-2], *grid), generator=gen).float() * 2 - 1
    flat = raw.view(-1, 1, *grid)
    blurred = torch.nn.functional.avg_pool2d(flat, 3, stride=1, padding=1, count_include_pad=False)
    blurred = blurred / blurred.flatten(1).std(1).view(-1, 1, 1, 1)
    if tuple(shape[-2:]) != grid:
        blurred = torch.nn.functional.interpolate(blurred, size=tuple(shape[-2:]), mode="nearest")
    return blurred.view(count, *shape)


def generate(samples: int, spec: SyntheticSpec, with_text: bool) -> tuple[dict, torch.Tensor]:
    gen = torch.Generator().manual_seed(spec.generator_seed)
    c, s = spec.num_classes, spec.image_size
    labels = torch.randint(0, c, (samples,), generator=gen)

    audio_proto = _patterns(gen, c, (1, *spec.audio_shape))
    reliable = torch.rand(samples, generator=gen) < spec.audio_reliability
    shown = torch.where(reliable, labels, torch.randint(0, c, (samples,), generator=gen))
    noise = torch.randn(samples, 1, *spec.audio_shape, generator=gen)
    audio = spec.audio_amplitude * audio_proto[shown] + noise

    visual_proto = _patterns(gen, c, (3, s, s))
    visual = spec.visual_amplitude * visual_proto[labels].unsqueeze(1) + torch.randn(
        samples, spec.frames, 3, s, s, generator=gen
    )
    inputs = {"audio": audio, "visual": visual}

    if with_text:
        # ids: 0 padding, 1..2c class tokens (two per class), the rest filler
        tokens = torch.randint(2 * c + 1, spec.text_vocab_size, (samples, spec.text_length), generator=gen)
        has_cue = torch.rand(samples, generator=gen) < spec.text_reliability
        for k in range(2):
            pos = torch.randint(0, spec.text_length, (samples,), generator=gen)
            cue = 1 + 2 * labels + k
            rows = torch.nonzero(has_cue).squeeze(1)
            tokens[rows, pos[rows]] = cue[rows]
        inputs["text"] = tokens
    return inputs, labels


def split_indices(n: int, fractions: tuple[float, float, float], seed: int) -> tuple[torch.Tensor, ...]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


class SyntheticAV(DatasetAdapter):
    """Synthetic audio + visual data with built-in imbalance (audio fast but unreliable). Generated
    in memory: a data folder or cache, if given, is not used (and `--set synthetic.X` is refused)."""

    description = "synthetic audio+visual, 6 classes, generated in memory (the default)"
    with_text = False
    default_skip = {"audio": 3, "visual": 1}

    def load(self, protocol: Protocol, progress: Progress | None = None) -> DatasetBundle:
        spec = SyntheticSpec(
            audio_shape=tuple(protocol.synthetic_audio_shape), image_size=protocol.synthetic_image_size
        )
        inputs, labels = generate(protocol.synthetic_samples, spec, self.with_text)
        parts = split_indices(len(labels), protocol.split, spec.generator_seed)
        train, val, test = (
            TensorSplit({m: t[idx] for m, t in inputs.items()}, labels[idx]) for idx in parts
        )
        return DatasetBundle(
            name=self.name,
            modalities=tuple(sorted(inputs)),
            num_classes=spec.num_classes,
            train=train,
            val=val,
            test=test,
            class_names=tuple(f"class{i}" for i in range(spec.num_classes)),
            split_name="random-80/10/10",
            default_skip=dict(self.default_skip),
            options=self.resolved_options(),
            input_shapes={m: tuple(t.shape[1:]) for m, t in inputs.items()},
            info={"generator": vars(spec) | {"samples": protocol.synthetic_samples},
                  "text_vocab_size": spec.text_vocab_size if self.with_text else 0},
        )


register_dataset("synthetic")(SyntheticAV)


@register_dataset("synthetic-avt")
class SyntheticAVT(SyntheticAV):
    """Synthetic audio + visual + text data (three modalities)."""

    description = "synthetic audio+visual+text, 6 classes, generated in memory"
    with_text = True
    default_skip = {"audio": 3, "visual": 1, "text": 2}
