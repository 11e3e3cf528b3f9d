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
from amst_bench.options import parse_value


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD as in the official AMST code (`code/common.py`, `init_optimizer_scheduler`)."""

    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_step: int = 70
    lr_gamma: float = 0.1


@dataclass(frozen=True)
class Protocol:
    """Everything that defines one benchmark run except the method and the dataset."""

    profile: str
    epochs: int
    batch_size: int
    seeds: tuple[int, ...]
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    encoder: str = "resnet18"  # "resnet18" (paper) or "tiny" (smoke)
    embedding_dim: int = 512
    # The official trainer evaluates test only when validation improves; the whole-epoch time
    # (paper Table 3) includes that. Set True to evaluate test every epoch (curves, slower).
    test_every_epoch: bool = False
    # Synthetic-data size and shapes for this profile (ignored by real datasets): audio is a
    # [1, time, mel] fbank-like array, visual `frames` images of side `synthetic_image_size`.
    synthetic_samples: int = 2000
    synthetic_audio_shape: tuple[int, int] = (1024, 128)
    synthetic_image_size: int = 224
    device: str = "auto"
    # "fp32" (as the official code) or "bf16": forward passes under torch.autocast(bfloat16),
    # parameters and optimiser state stay float32. An opt-in speed setting, recorded and grouped.
    precision: str = "fp32"
    # Local folder of the RoBERTa tokenizer/config(/weights) for text datasets (--text-model).
    text_model: str = ""
    text_trainable_layers: int = 5

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
        device="cpu",
    ),
    # A short timed grid with the paper's encoders and input sizes, for accelerators.
    "bench": Protocol(
        profile="bench", epochs=5, batch_size=64, seeds=(0,), synthetic_samples=1024
    ),
}

# Fields a user may override from the CLI (`--set epochs=5`). Anything else is a rule.
OVERRIDABLE = {
    "epochs",
    "batch_size",
    "encoder",
    "embedding_dim",
    "test_every_epoch",
    "synthetic_samples",
    "device",
    "optimizer.lr",
    "optimizer.lr_step",
    "text_model",
    "precision",
}


def get_profile(name: str) -> Protocol:
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(
            f"--profile: unknown profile {name!r}; expected one of {', '.join(PROFILES)}"
        ) from None


def apply_overrides(protocol: Protocol, overrides: dict[str, str]) -> Protocol:
    """Return a new protocol with validated overrides applied (strings parsed to field types)."""
    for key, raw in overrides.items():
        if key not in OVERRIDABLE:
            raise UserError(
                f"--set {key}: not an overridable protocol field; "
                f"expected one of {', '.join(sorted(OVERRIDABLE))}"
            )
        if key.startswith("optimizer."):
            sub = key.split(".", 1)[1]
            opt = protocol.optimizer
            value = parse_value(raw, type(getattr(opt, sub)), key)
            protocol = dataclasses.replace(
                protocol, optimizer=dataclasses.replace(opt, **{sub: value})
            )
        else:
            value = parse_value(raw, type(getattr(protocol, key)), key)
            protocol = dataclasses.replace(protocol, **{key: value})
    if protocol.epochs < 1:
        raise UserError("--set epochs: expected a positive integer")
    if protocol.batch_size < 1:
        raise UserError("--set batch_size: expected a positive integer")
    if protocol.precision not in {"fp32", "bf16"}:
        raise UserError(f"--set precision: expected 'fp32' or 'bf16', got {protocol.precision!r}")
    if protocol.encoder not in {"resnet18", "tiny"}:
        raise UserError(f"--set encoder: expected 'resnet18' or 'tiny', got {protocol.encoder!r}")
    return protocol


def stable_hash(payload: Any, length: int = 10) -> str:
    """Short, order-independent hash of a JSON-able payload (config identity of a run)."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
