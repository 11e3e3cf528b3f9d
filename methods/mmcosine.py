"""MMCosine: multi-modal cosine loss.

Paper: R. Xu, R. Feng, S.-X. Zhang, D. Hu, "MMCosine: Multi-Modal Cosine Loss Towards Balanced
Audio-Visual Fine-Grained Learning", ICASSP 2023 (arXiv 2303.05338; full text not readable here).
Code followed (read, not copied): GeWu-Lab/MMCosine_ICASSP23 `main_CD.py` (`train_epoch`, `valid`,
`main`: optimiser and schedule) and `models/fusion_modules.py` (`ConcatFusion`).
Second reference: GeWu-Lab/BalanceBenchmark `balancemm/trainer/MMCosine_trainer.py` (three
modalities the same way; a modulation window 0-80 outside which it trains the plain head).

Mechanism (the code's `--mmcosine True`, concat fusion):
  - one encoder per modality and a concat head (a weight block W_m per modality, one bias b);
  - per-modality logits are scaled cosines: z_m[c] = s · cos(e_m, W_m[c]) (both L2-normalised:
    the embedding per sample, the block's row per class); the fused logits are Σ_m z_m (no bias:
    the bias gets no gradient and is never updated); loss = CE(Σ_m z_m);
  - prediction: Σ_m z_m (`predict=cosine`, the default; what the method trains and what
    BalanceBenchmark evaluates).

Defaults and presets:
  `harness` (default)  the protocol's SGD (lr 1e-3, momentum 0.9, wd 1e-4) and StepLR(70, 0.1);
                       scaling s = 10 (argparse default and the README's command).
  `original`           the code's StepLR step 100 (`--lr_decay_step`, 200 epochs) and its `valid`
                       prediction: the plain concat head W[e_a; e_v] + b (`predict=linear`), see below.
                       Its epochs (200) and batch size (32) are protocol fields: `--set epochs=200
                       --set batch_size=32`. Its SGD settings equal the protocol's.
  Each preset value can be overridden (`scaling`, `predict`, `lr_step`); what ran is recorded.

Deviations and choices:
  - The code's `valid` computes the scaled-cosine unimodal logits but takes the fused accuracy from
    the model's ordinary output fc_out([a; v]) (raw weights and bias), which training never used;
    `predict=linear` reproduces that, the default uses the trained cosine logits.
  - The NCE term of the supplementary (`--lam`, default 0) is not implemented (its default is off).
  - Only the concat fusion (the code also has gated / FiLM, where the same normalisation applies to
    the last layer's blocks).
  - Three or more modalities: one block per modality, z summed over all (BalanceBenchmark's rule).
  - One SGD per part (encoders, head) instead of one over the model: the same update.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, Prediction, StepOutput

PRESETS = {
    "harness": {"predict": "cosine", "lr_step": None},
    "original": {"predict": "linear", "lr_step": 100},
}


@dataclass(frozen=True)
class MMCosineOptions:
    """preset   harness (the protocol's schedule, cosine prediction) | original (the code's)
    scaling  s in z_m = s·cos(e_m, W_m)
    predict  None: the preset's (cosine: Σ z_m; linear: the plain concat head, the code's valid)
    lr_step  None: the preset's StepLR step (harness: the protocol's; original: 100)"""

    preset: str = option("harness", choices=tuple(PRESETS))
    scaling: float = option(10.0, minimum=0.0)
    predict: str | None = option(None, choices=("cosine", "linear"))
    lr_step: int | None = option(None, minimum=1)


def cosine_logits(embedding: torch.Tensor, weight: torch.Tensor, scaling: float) -> torch.Tensor:
    """s · cos(e, W[c]) for every class c: embeddings [B, D] and weight rows [C, D] L2-normalised."""
    return scaling * F.normalize(embedding, dim=1) @ F.normalize(weight, dim=1).T


@register_method("mmcosine")
class MMCosine(EncodersAndHead):
    family = "objective"
    extra_work_per_step = ""
    description = "MMCosine: per-modality logits = scaling x cosine(embedding, class weight), summed"
    Config = MMCosineOptions
    head_kind = "concat"

    def __init__(self, config: MMCosineOptions, ctx):
        super().__init__(config, ctx)
        preset = PRESETS[config.preset]
        self.prediction_rule = config.predict or preset["predict"]
        self.lr_step = config.lr_step or preset["lr_step"] or ctx.protocol.optimizer.lr_step
        if self.lr_step != ctx.protocol.optimizer.lr_step:
            for scheduler in self.schedulers.values():
                scheduler.step_size = self.lr_step

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"mmcosine needs two or more modalities; got {', '.join(modalities)}")

    def cosine_parts(self, embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        blocks = self.model["head"].blocks
        return {m: cosine_logits(e, blocks[m].weight, self.config.scaling) for m, e in embeddings.items()}

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        logits = torch.stack(list(self.cosine_parts(embeddings).values())).sum(0)
        loss = self.cross_entropy(logits, batch.labels)
        self.step(list(self.optimizers.values()), loss)
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        if self.prediction_rule == "linear":
            return super().predict(inputs)
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        parts = self.cosine_parts(embeddings)
        return Prediction(torch.stack(list(parts.values())).sum(0), embeddings, parts)

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {"predict": self.prediction_rule, "lr_step": self.lr_step}
