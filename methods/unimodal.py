"""Unimodal baselines `audio`, `visual`, `text`: one encoder and a linear head on one modality.

Follows the official AMST code (`code/baseline/single_modality.py`: `UniR18` / `UniBERT`, encoder
then `nn.Linear(feature_dim, n_classes)`, cross-entropy, SGD lr 1e-3 / momentum 0.9 / wd 1e-4,
StepLR), run by `Jobs/single_modality.sh`:
  - audio / visual (`UniR18`): `model.apply(weight_init)`, so the head is Xavier-normal with a zero
    bias (`official_init`); `feature_dim` is 512 on every dataset, so on text datasets these
    encoders have NO projection to RoBERTa's 768 (the multimodal methods' encoders do);
  - text (`UniBERT`): `weight_init` is not applied, so the head keeps PyTorch's default Linear
    init (reset here after the head is built);
  - the script sets TF32 on for matmuls and cuDNN (`tf32 = True`: the trainer forces both on for
    the run and restores them; recorded in `determinism`); every multimodal job passes --no_tf32;
  - test is evaluated every epoch (`test_every_epoch_default = True`; its time is in the epoch
    time), unless `--set test_every_epoch=...` says otherwise.
Deviations:
  - the head is an `lsum` head on one modality (one Linear; same map, other parameter names), and
    the training step is `EncodersAndHead`'s joint step (CE, zero_grad / backward / step);
  - one SGD per part (encoder, head) instead of one over the model: the same update;
  - the encoder is the protocol's (ResNet18 / RoBERTa, or the smoke profile's tiny nets; a tiny
    text encoder gets `official_init`, RoBERTa keeps its weights as in the code);
  - the trainer trains linear probes on the detached embedding (the script has none): they do
    not touch the model, but their small cost is in the timings;
  - an explicit `--set embedding_dim` on an audio-visual dataset applies here too (the script
    has no such setting).
"""

from __future__ import annotations

import torch.nn as nn

from amst_bench.errors import UnsupportedDataset
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead
from amst_bench.train.models import build_head


class Unimodal(EncodersAndHead):
    abstract = True  # the base of audio / visual / text, not a method of its own
    version = 2  # 2: one-modality lsum head, official init, TF32 forced, test every epoch
    family = "unimodal"
    modality = ""
    head_kind = "lsum"
    test_every_epoch_default = True  # the script tests every epoch
    tf32 = True  # single_modality.py sets matmul and cuDNN TF32 on

    def check_supported(self, modalities):
        if self.modality not in modalities:
            raise UnsupportedDataset(
                f"method {self.name!r} needs the {self.modality} modality; dataset "
                f"{self.ctx.dataset.name!r} has {', '.join(modalities)}"
            )

    def select_modalities(self, available):
        return (self.modality,)

    @property
    def embedding_dim(self) -> int:
        """`UniR18(feature_dim=512)`: a ResNet18 audio / visual encoder is not widened to RoBERTa's
        width on a text dataset (the multimodal methods' encoders are)."""
        ctx = self.ctx
        if self.modality != "text" and ctx.protocol.encoder == "resnet18" and "text" in ctx.modalities:
            return 512
        return ctx.embedding_dim

    def build_model(self) -> nn.ModuleDict:
        m = self.modality
        encoders = nn.ModuleDict({m: self.ctx.make_encoder(m, embedding_dim=self.embedding_dim)})
        head = build_head(self.head_kind, self.modalities, self.embedding_dim, self.ctx.num_classes)
        if m == "text":  # UniBERT's head is not passed through weight_init
            head.layers[m].reset_parameters()
        return nn.ModuleDict({"encoders": encoders, "head": head})

    def subset_logits(self, prediction, modalities):
        """One modality: nothing to balance, so no balance metrics."""
        return None


@register_method("audio")
class AudioOnly(Unimodal):
    description = "unimodal baseline: audio encoder + linear head"
    modality = "audio"
    extra_work_per_step = ""


@register_method("visual")
class VisualOnly(Unimodal):
    description = "unimodal baseline: visual encoder + linear head"
    modality = "visual"
    extra_work_per_step = ""


@register_method("text")
class TextOnly(Unimodal):
    description = "unimodal baseline: text encoder + linear head"
    modality = "text"
    extra_work_per_step = ""
