"""What AMST-Alt, AMST-Joint and AMST-Full share: the skip rule as a `SkipSchedule` they hold
(`AmstMethod`, their base), their options, the joint (sub-head) update and the one-module
training step (`AmstOneModule`, the base of AMST-Alt and AMST-Joint).

Skip rule: modality m is trained in epoch e iff e mod s_m == 0, with epochs counted from 0 as in
the official code (`for epoch in range(epochs)`; `epoch % s != 0` → skip): s = 5 trains in epochs
0, 5, …, 95. Updates follow `alter_train` (code/amst_alt.py, here
amst_bench.train.updates.alternating_update, shared with MLA) and `joint_train`
(code/amst_joint.py, `joint_update` below).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UserError
from amst_bench.options import option
from amst_bench.train.method import EncodersAndHead, Method, StepOutput

SKIPPED_FORWARD = ("official", "none")


@dataclass(frozen=True)
class SkipSchedule:
    """Per-modality skip parameters s_m and whether skipping is on (off: every modality trains
    every epoch, the ablation grid's 'no Skip' rows)."""

    skip: Mapping[str, int]
    enabled: bool = True

    def __post_init__(self) -> None:
        bad = {m: s for m, s in self.skip.items() if s < 1}
        if bad:
            raise UserError(f"skip parameters must be integers >= 1, got {bad}")

    @classmethod
    def resolve(
        cls,
        modalities: tuple[str, ...],
        configured: Mapping[str, int] | None,
        dataset_default: Mapping[str, int],
        enabled: bool = True,
    ) -> SkipSchedule:
        """Configured values win, then the dataset's paper values, then 1."""
        configured = dict(configured or {})
        unknown = set(configured) - set(modalities)
        if unknown:
            raise UserError(
                f"skip parameter for {', '.join(sorted(unknown))}: the dataset has only "
                f"{', '.join(modalities)}"
            )
        return cls({m: configured.get(m, dataset_default.get(m, 1)) for m in modalities}, enabled)

    def trains(self, modality: str, epoch: int) -> bool:
        return not self.enabled or epoch % self.skip[modality] == 0

    def active(self, epoch: int, modalities: Iterable[str]) -> tuple[str, ...]:
        """The modalities (in the given order) trained in this epoch."""
        return tuple(m for m in modalities if self.trains(m, epoch))

    def effective(self) -> dict[str, int]:
        """s_m as it acts (1 everywhere when disabled): what results record."""
        return {m: s if self.enabled else 1 for m, s in self.skip.items()}


@dataclass(frozen=True)
class SkipOptions:
    """Options every AMST method shares.

    skip             per-modality skip parameters (>= 1); unset ones come from the dataset's paper values
    skip_enabled     False trains every modality every epoch (the ablation grid's 'no Skip' rows)
    skipped_forward  'official': a skipped encoder is still forwarded (train mode, so BatchNorm
                     statistics move) without a graph and gets no update; 'none': not forwarded
    """

    skip: dict[str, int] | None = option(None, minimum=1)
    skip_enabled: bool = True
    skipped_forward: str = option("official", choices=SKIPPED_FORWARD)


def schedule_from(config: SkipOptions, modalities: tuple[str, ...], dataset_default: Mapping[str, int]
                  ) -> SkipSchedule:
    return SkipSchedule.resolve(modalities, config.skip, dataset_default, config.skip_enabled)


def skip_record(config: SkipOptions, schedule: SkipSchedule) -> dict[str, Any]:
    """The options that ran, with the skip parameters filled in from the dataset."""
    return dataclasses.asdict(config) | {"skip": schedule.effective()}


# ---------------------------------------------------------------------- updates


def joint_update(
    embeddings: dict[str, torch.Tensor],
    head: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    labels: torch.Tensor,
    trained: Iterable[str],
) -> list[torch.Tensor]:
    """One loss on the sub-head of the trained modalities (their weight blocks, b/n each); no
    update when every modality is skipped this epoch (as the official code). Returns the
    detached loss, as a list like `alternating_update`."""
    active = {m: embeddings[m] for m in sorted(trained)}
    if not active:
        return []
    logits, _ = head(active)
    loss = F.cross_entropy(logits, labels)
    Method.step(optimizers, loss)
    return [loss.detach()]


def mean_loss(losses: list[torch.Tensor], fallback: torch.Tensor) -> torch.Tensor:
    return torch.stack(losses).mean() if losses else fallback.detach()


def encode_with_skips(
    encoders: nn.ModuleDict,
    inputs: dict[str, torch.Tensor],
    trained: tuple[str, ...],
    skipped_forward: str,
) -> dict[str, torch.Tensor]:
    """Embeddings of the trained modalities; skipped ones are forwarded without a graph
    ('official': train mode, so BatchNorm statistics move, but no gradient) or not at all ('none')."""
    out: dict[str, torch.Tensor] = {}
    for m in encoders:
        if m in trained:
            out[m] = encoders[m](inputs[m])
        elif skipped_forward == "official":
            with torch.no_grad():
                out[m] = encoders[m](inputs[m])
    return out


class AmstMethod(Method):
    """Base of the AMST methods: `SkipOptions`, and the skip schedule, resolved against the
    dataset's paper values, held as `self.schedule`; it decides `trained_modalities` and fills
    in the skip parameters that ran in `resolved_options`."""

    abstract = True  # the base of amst-alt / amst-joint / amst-full, not a method of its own
    Config: ClassVar[type] = SkipOptions

    def __init__(self, config, ctx):
        self.schedule = schedule_from(config, ctx.modalities, ctx.dataset.default_skip)
        super().__init__(config, ctx)

    def trained_modalities(self, epoch: int) -> tuple[str, ...]:
        return self.schedule.active(epoch, self.modalities)

    def resolved_options(self) -> dict[str, Any]:
        return skip_record(self.config, self.schedule)


class AmstOneModule(AmstMethod, EncodersAndHead):
    """AMST-Alt / AMST-Joint: one module (encoders and a `head_kind` head) trained by `update`
    (`alternating_update` or `joint_update`)."""

    abstract = True
    update: ClassVar[Callable[..., list[torch.Tensor]]]

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        """Encode (skipped encoders per `skipped_forward`), then `update` the trained modalities;
        the fused logits (for train accuracy) come from the model before it."""
        trained = self.trained_modalities(epoch)
        embeddings = encode_with_skips(
            self.model["encoders"], batch.inputs, trained, self.config.skipped_forward
        )
        with torch.no_grad():  # training accuracy, from the model as it was before this step
            fused, _ = self.model["head"]({m: e.detach() for m, e in embeddings.items()})
        losses = self.update(
            embeddings, self.model["head"], list(self.optimizers.values()), batch.labels, trained
        )
        fallback = self.cross_entropy(fused, batch.labels)
        return StepOutput(mean_loss(losses, fallback), fused, embeddings)
