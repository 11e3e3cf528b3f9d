"""Unimodal baselines `audio`, `visual`, `text`: one encoder and a linear head on one modality.

Follows the official AMST code (`code/baseline/single_modality.py`: `UniR18` / `UniBERT`, encoder
then `nn.Linear(feature_dim, n_classes)`, SGD as every other method).
Deviations: none in the mechanism; the encoder is the protocol's (ResNet18 / tiny).
"""

from __future__ import annotations

import torch.nn as nn

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.registry import register_method
from amst_bench.train.method import Method, Prediction, StepOutput


class Unimodal(Method):
    abstract = True  # the base of audio / visual / text, not a method of its own
    modality = ""

    def check_supported(self, modalities):
        if self.modality not in modalities:
            raise UnsupportedDataset(
                f"method {self.name!r} needs the {self.modality} modality; dataset "
                f"{self.ctx.dataset.name!r} has {', '.join(modalities)}"
            )

    def select_modalities(self, available):
        return (self.modality,)

    def build_model(self) -> nn.ModuleDict:
        m = self.modality
        head = nn.Linear(self.ctx.embedding_dim, self.ctx.num_classes)
        return nn.ModuleDict({"encoders": nn.ModuleDict({m: self.ctx.make_encoder(m)}), "head": head})

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        pred = self.predict(batch.inputs)
        loss = self.cross_entropy(pred.logits, batch.labels)
        self.step(list(self.optimizers.values()), loss)
        return StepOutput(loss.detach(), pred.logits.detach(), pred.embeddings)

    def predict(self, inputs):
        m = self.modality
        embedding = self.model["encoders"][m](inputs[m])
        logits = self.model["head"](embedding)
        return Prediction(logits, {m: embedding}, {m: logits})


@register_method("audio")
class AudioOnly(Unimodal):
    description = "unimodal baseline: audio encoder + linear head"
    modality = "audio"


@register_method("visual")
class VisualOnly(Unimodal):
    description = "unimodal baseline: visual encoder + linear head"
    modality = "visual"


@register_method("text")
class TextOnly(Unimodal):
    description = "unimodal baseline: text encoder + linear head"
    modality = "text"
