"""The fixed benchmark protocol as frozen dataclasses, and the named profiles that set its budgets.

Profiles change budgets (epochs, seeds, data size, encoder size), never the rules: every method runs
under the same optimiser, schedule, split fractions and validation-based model selection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from amst_bench.errors import UserError
from amst_bench.options import build_options, option


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD as in the official AMST code (`code/common.py`, `init_optimizer_scheduler`)."""

    lr: float = option(1e-3, minimum=0.0)
    momentum: float = option(0.9, overridable=False)
    weight_decay: float = option(1e-4, overridable=False)
    lr_step: int = option(70, minimum=1)
    lr_gamma: float = option(0.1, overridable=False)


@dataclass(frozen=True)
class Protocol:
    """Everything that defines one benchmark run except the method and the dataset."""

    profile: str = option(overridable=False)
    epochs: int = option(minimum=1)
    batch_size: int = option(minimum=1)
    seeds: tuple[int, ...] = option(overridable=False)  # set with --seeds
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    split: tuple[float, float, float] = option((0.8, 0.1, 0.1), overridable=False)
    encoder: str = option("resnet18", choices=("resnet18", "tiny"))  # paper / smoke encoders
    embedding_dim: int = option(512, minimum=1)
    # The official trainer evaluates test only when validation improves; the whole-epoch time
    # (paper Table 3) includes that. Set True to evaluate test every epoch (curves, slower).
    test_every_epoch: bool = False
    # Synthetic-data size and shapes for this profile (ignored by real datasets): audio is a
    # [1, time, mel] fbank-like array, visual `frames` images of side `synthetic_image_size`.
    # Real-data inputs on the device: frames cropped/resized to image_size² (paper: 224, as the
    # official transforms), fbank average-pooled by fbank_pool in time and frequency (paper: 1).
    # A budget, like the encoder size: the smoke profile shrinks them so a real dataset is a
    # quick CPU check, never a different rule. Synthetic data ignores both.
    image_size: int = option(224, minimum=8)
    fbank_pool: int = option(1, minimum=1)
    synthetic_samples: int = option(2000, minimum=10)
    synthetic_audio_shape: tuple[int, int] = option((1024, 128), overridable=False)
    synthetic_image_size: int = option(224, overridable=False)
    device: str = "auto"
    # CPU threads for torch (0: torch's default, one per core). The smoke profile's tiny nets run
    # several times faster on one thread than on two (OpenMP start-up dominates such small ops,
    # and on a shared machine spinning threads thrash). Like the device, not part of a run's identity.
    cpu_threads: int = option(0, minimum=0)
    # "fp32" (as the official code) or "bf16": forward passes under torch.autocast(bfloat16),
    # parameters and optimiser state stay float32. An opt-in speed setting, recorded and grouped.
    precision: str = option("fp32", choices=("fp32", "bf16"))
    # Opt-in speed settings (README, Performance): `speed=fast` sets precision=bf16 and each switch
    # below except `compile` (FAST_PRESET; a field set on its own wins). Each may change numerics,
    # so each is recorded, part of a run's identity and shown in its protocol label (grouped apart).
    speed: str = option("default", choices=("default", "fast"))
    channels_last: bool = False  # conv weights and image inputs in channels-last (NHWC) memory format
    cudnn_benchmark: bool = False  # cuDNN autotuning: faster kernels, non-deterministic runs
    fused_sgd: bool = False  # the optimisers' fused kernel (foreach where the device has none)
    compile: bool = False  # torch.compile the encoders; uncompiled, with a message, where it cannot
    tf32: bool = False  # TF32 matmuls and convolutions on CUDA (False: the method's own setting)
    # Training steps per epoch at most (0: every batch): `amst-bench bench --steps N`, to time the
    # paper's encoders on a CPU in minutes. A budget, like epochs; recorded and grouped apart.
    max_train_steps: int = option(0, minimum=0)
    # Local folder of the RoBERTa tokenizer/config(/weights) for text datasets (--text-model).
    text_model: str = ""
    text_trainable_layers: int = option(5, overridable=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PROFILES: dict[str, Protocol] = {
    "paper": Protocol(profile="paper", epochs=100, batch_size=64, seeds=(0, 1, 2)),
    "smoke": Protocol(
        profile="smoke",
        epochs=12,
        batch_size=64,
        seeds=(0, 1, 2),
        encoder="tiny",
        embedding_dim=32,
        synthetic_samples=1200,
        synthetic_audio_shape=(16, 16),
        synthetic_image_size=16,
        image_size=32,
        fbank_pool=8,
        device="cpu",
        cpu_threads=1,
    ),
    # A short timed grid with the paper's encoders and input sizes, for accelerators.
    "bench": Protocol(
        profile="bench", epochs=5, batch_size=64, seeds=(0,), synthetic_samples=1024
    ),
}

def get_profile(name: str) -> Protocol:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(
            f"--profile: unknown profile {name!r}; expected one of {', '.join(PROFILES)}"
        ) from None


# What `--set speed=fast` sets, unless the same field is set explicitly.
FAST_PRESET = {"precision": "bf16", "channels_last": "true", "cudnn_benchmark": "true",
               "fused_sgd": "true", "tf32": "true"}

# Protocol fields added after results were published: left out of a run's identity while at their
# default (RunSpec.identity), so the runs stored before them keep their ids.
ADDED_AFTER_PUBLISHING = ("speed", "channels_last", "cudnn_benchmark", "fused_sgd", "compile", "tf32",
                          "max_train_steps")


def apply_overrides(protocol: Protocol, overrides: dict[str, str]) -> Protocol:
    """A new protocol with `--set FIELD=VALUE` overrides applied; rules cannot be overridden.
    `speed=fast` expands to FAST_PRESET first, so each setting it implies is recorded."""
    built = build_options(protocol, overrides)
    if built.speed == "fast":
        built = build_options(protocol, FAST_PRESET | dict(overrides))
    return built


def without_unset_later_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """A protocol dict without the ADDED_AFTER_PUBLISHING fields that are at their default."""
    defaults = {f.name: f.default for f in dataclasses.fields(Protocol)}
    return {k: v for k, v in payload.items()
            if not (k in ADDED_AFTER_PUBLISHING and v == defaults[k])}


def stable_hash(payload: Any, length: int = 10) -> str:
    """Short, order-independent hash of a JSON-able payload (config identity of a run)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
