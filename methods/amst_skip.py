"""AMST's skip rule, shared by AMST-Alt, AMST-Joint and AMST-Full.

Modality m is trained in epoch e iff e mod s_m == 0, with epochs counted from 0 as in the official
code (`for epoch in range(epochs)`; `epoch % s != 0` → skip): s = 5 trains in epochs 0, 5, …, 95.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from amst_bench.data.tensors import Batch
from amst_bench.errors import UserError
from amst_bench.train.method import EncodersAndHead, StepOutput
from amst_bench.train.updates import mean_loss

SKIPPED_FORWARD = ("official", "none")


def is_trained(epoch: int, skip: int) -> bool:
    return epoch % skip == 0


def resolve_skip(
    modalities: tuple[str, ...],
    configured: Mapping[str, int] | None,
    dataset_default: Mapping[str, int],
    enabled: bool,
) -> dict[str, int]:
    """Per-modality skip parameters: configured ones win, then the dataset's paper values, then 1.
    With skipping disabled (the ablation grid's 'no Skip' rows) every modality gets 1."""
    configured = dict(configured or {})
    unknown = set(configured) - set(modalities)
    if unknown:
        raise UserError(
            f"skip parameter for {', '.join(sorted(unknown))}: the dataset has only "
            f"{', '.join(modalities)}"
        )
    factors = {}
    for m in modalities:
        value = configured.get(m, dataset_default.get(m, 1))
        if value < 1:
            raise UserError(f"skip parameter for {m}: expected an integer >= 1, got {value}")
        factors[m] = value if enabled else 1
    return factors


def trained_modalities(epoch: int, factors: Mapping[str, int]) -> tuple[str, ...]:
    return tuple(m for m, s in factors.items() if is_trained(epoch, s))


# ---------------------------------------------------------------------- options and base class


@dataclass(frozen=True)
class SkipOptions:
    """Options every AMST method shares.

    skip             per-modality skip parameters; unset ones come from the dataset's paper values
    skip_enabled     False trains every modality every epoch (the ablation grid's 'no Skip' rows)
    skipped_forward  'official': a skipped encoder is still forwarded (train mode, so BatchNorm
                     statistics move) without a graph and gets no update; 'none': not forwarded
    """

    skip: dict[str, int] | None = None
    skip_enabled: bool = True
    skipped_forward: str = field(default="official", metadata={"choices": SKIPPED_FORWARD})


class SkippingMethod(EncodersAndHead):
    """A method whose modalities follow AMST's skip rule. With one module (encoders + head), a
    training step encodes (skipped encoders per `skipped_forward`) and applies `update` (one of
    amst_bench.train.updates) to the trained modalities."""
    abstract = True  # the base of the AMST plugins

    Config = SkipOptions
    update: ClassVar[Callable[..., list[torch.Tensor]]]

    def __init__(self, config, ctx):
        self.skip_factors = resolve_skip(
            ctx.modalities, config.skip, ctx.dataset.default_skip, config.skip_enabled
        )
        super().__init__(config, ctx)

    def trained_modalities(self, epoch: int) -> tuple[str, ...]:
        return trained_modalities(epoch, self.skip_factors)

    def resolved_options(self):
        return dataclasses.asdict(self.config) | {"skip": dict(self.skip_factors)}

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        trained = self.trained_modalities(epoch)
        embeddings = self.encode(
            self.model["encoders"], batch.inputs, trained, self.config.skipped_forward
        )
        with torch.no_grad():  # training accuracy, from the model as it was before this step
            fused, _ = self.model["head"]({m: e.detach() for m, e in embeddings.items()})
        losses = type(self).update(
            embeddings, self.model["head"], list(self.optimizers.values()), batch.labels, trained
        )
        fallback = self.cross_entropy(fused, batch.labels)
        return StepOutput(mean_loss(losses, fallback), fused, embeddings)
