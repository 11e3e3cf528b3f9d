"""Joint training plus one auxiliary cross-entropy per modality on that modality's own logits:
a complete method plugin in one file (the README's "Write a method" example)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead


@dataclass(frozen=True)
class AuxLossOptions:
    # --set aux-loss.weight=0.5 sets it; every resolved value is recorded in each result
    weight: float = option(1.0, minimum=0.0)


@register_method("aux-loss")
class AuxLoss(EncodersAndHead):
    """Paper: none (an example). Deviations: none."""

    description = "joint CE + weight × mean per-modality CE on the lsum head's parts (example)"
    Config = AuxLossOptions
    head_kind = "lsum"  # one linear layer per modality, logits summed: the parts are unimodal logits

    def extra_loss(self, batch, epoch, embeddings, logits, per_modality) -> torch.Tensor:
        losses = [self.cross_entropy(part, batch.labels) for part in per_modality.values()]
        return self.config.weight * torch.stack(losses).mean()
