"""AMST-Alt: the alternating module with skip training (AMST, ECML-PKDD 2025, §3.2, Algorithm 1).

Follows the official code (CXianRen/AMST, `code/amst_alt.py`, `AMST_A_Trainer.alter_train`):
  - one encoder per modality and one shared linear head (`msum`);
  - per batch, for each modality in sorted order that is trained this epoch (e mod s_m == 0,
    epochs from 0): logits of that modality alone through the shared head, its own
    cross-entropy, zero_grad / backward / step of the encoder and head optimisers;
  - prediction: the mean of the per-modality logits (even split, paper §4.2).
Deviations / options:
  - `skipped_forward`: 'official' (default) forwards a skipped encoder in train mode without a
    graph, as the code does (it builds one, then never backpropagates it; same numbers, less
    memory); 'none' does not forward it at all (faster, BatchNorm statistics frozen).
  - `skip_enabled=False` is the alternating module without skip (ablation row 3); with default
    skip parameters this is the same update as MLA's released code.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from amst_bench.data import Batch
from amst_bench.method import Prediction, StepOutput
from amst_bench.models import build_head
from amst_bench.registry import register_method
from amst_bench.skip import SkippingMethod
from amst_bench.updates import alternating_update, mean_loss


@register_method("amst-alt")
class AmstAlt(SkippingMethod):
    description = "AMST alternating module: per-modality losses, shared head, skip training"

    def build_model(self) -> nn.ModuleDict:
        ctx = self.ctx
        return nn.ModuleDict({
            "encoders": self.encoders(),
            "head": build_head("msum", self.modalities, ctx.embedding_dim, ctx.num_classes),
        })

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        trained = self.trained_modalities(epoch)
        embeddings = self.encode(
            self.model["encoders"], batch.inputs, trained, self.config.skipped_forward
        )
        with torch.no_grad():
            fused, _ = self.model["head"]({m: e.detach() for m, e in embeddings.items()})
        losses = alternating_update(
            embeddings, self.model["head"], list(self.optimizers.values()), batch.labels, trained
        )
        fallback = self.cross_entropy(fused, batch.labels)
        return StepOutput(mean_loss(losses, fallback), fused, embeddings)

    def predict(self, inputs):
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        logits, parts = self.model["head"](embeddings)
        return Prediction(logits, embeddings, parts)
