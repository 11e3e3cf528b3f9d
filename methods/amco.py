"""AMCo: adaptive mask co-optimisation, as implemented in BalanceBenchmark.

Code followed: GeWu-Lab/BalanceBenchmark (commit 4c1482f) `balancemm/trainer/AMCo_trainer.py`
(`AMCoTrainer.train_loop`, `training_step`) and `balancemm/models/avclassify_model.py`
(`BaseClassifierAMCoModel`), with the defaults of `configs/trainer_config.yaml` (`AMCo: sigma 0.5,
eps 0.3, modulation_starts 0, modulation_ends 80`; its `alpha 0.1`, `U 512`, `method` and
`modality` are read by the trainer but never used, so they are not options here). The AMCo paper
and any code by its authors could not be read here: BalanceBenchmark is the only reference (a
deviation risk; see the closing note).

Mechanism:
  - model: per-modality logits z_m = W_m e_m + b/n (the `concat` head's blocks, as the code's
    `ConcatFusion_N` split per modality), fused = linear*(Σ_m z_m) with linear* a C → C linear layer
    (`linear_star`, PyTorch's default initialisation as the code constructs it);
  - per epoch, l_t = 0 and no modality is "dependent"; per batch, pt = sin(π/2 · min(eps, l_t)/eps),
    N = int(pt · C) classes are masked: a 0/1 vector over the C classes with N zeros at random
    positions (one mask per batch, shared by its samples: the code's [2, C] mask is split over its
    two data-parallel GPUs), then l_t += epoch / 10 (so epoch 0 never masks, and from epoch 1 the
    whole mask is reached after ⌈3/epoch⌉ batches);
  - inside epochs `modulation_starts` <= e <= `modulation_ends` (inclusive, from 0): the dependent
    modalities' logits are multiplied by the mask before the sum, the loss is CE(fused) +
    Σ_m CE(z_m) (the code backpropagates them one after the other: the same gradients), and after the
    step the dependent set is recomputed for the next batch: softmax over the concatenation
    [z_1, …, z_n] (n·C values, masked logits as they were used), modality m is dependent iff the
    batch-mean probability mass of its block exceeds `sigma`;
  - outside the window: CE(fused) without masks (the mask is still drawn, as the code does);
  - prediction: linear*(Σ_m z_m), no mask.

Deviations:
  - masks are drawn with torch's generator (the run's seeded, checkpointed RNG), not numpy's;
  - the reported training loss is the whole backpropagated loss (the code reports CE(fused));
  - protocol: this harness's (SGD, 100 epochs, batch 64, StepLR(70, 0.1), last batch kept);
    BalanceBenchmark's protocol (AdamW, 30 epochs, StepLR(10)) is the benchmark's, not the
    method's, so there is no `preset=original`;
  - three or more modalities run (the code loops over `model.modalitys`).
Closing note: `U = 512` (a feature width) in the code's config suggests the paper masks feature
units; the code masks class logits of the dependent modality, and its l_t grows by epoch/10 per batch.
Without the paper neither can be checked; this file does what the code does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, Prediction, StepOutput, check_modulation_window


@dataclass(frozen=True)
class AMCoConfig:
    """sigma  a modality is dependent when its block holds more than this share of softmax mass
    eps    l_t at which the mask covers every class
    modulation_starts, modulation_ends  first and last epoch (inclusive) with masks and unimodal CE"""

    sigma: float = option(0.5, minimum=0.0)
    eps: float = option(0.3, minimum=1e-9)
    modulation_starts: int = option(0, minimum=0)
    modulation_ends: int = option(80, minimum=0)


def masked_count(l_t: float, eps: float, num_classes: int) -> int:
    """N = int(sin(π/2 · min(eps, l_t) / eps) · C): how many classes the mask zeroes."""
    return int(math.sin(math.pi / 2 * (min(eps, l_t) / eps)) * num_classes)


def class_mask(l_t: float, eps: float, num_classes: int) -> torch.Tensor:
    """[1, C] float mask with `masked_count` zeros at random classes (torch's global RNG)."""
    zeros = masked_count(l_t, eps, num_classes)
    mask = torch.ones(num_classes)
    mask[torch.randperm(num_classes)[:zeros]] = 0.0
    return mask.unsqueeze(0)


def dependent_modalities(parts: dict[str, torch.Tensor], sigma: float) -> dict[str, bool]:
    """m is dependent iff Σ over its block of softmax([z_1, …, z_n]) / B > sigma."""
    probs = F.softmax(torch.cat(list(parts.values()), dim=1).detach().float(), dim=1)
    blocks = probs.split([z.shape[1] for z in parts.values()], dim=1)
    batch = probs.shape[0]
    return {m: bool(block.sum() / batch > sigma) for m, block in zip(parts, blocks, strict=True)}


@register_method("amco")
class AMCo(EncodersAndHead):
    family = "feed-forward"
    # a class mask and a C x C layer on the logits
    extra_work_per_step = ""
    description = "AMCo (BalanceBenchmark): class mask on the dependent modality's logits, unimodal CEs"
    Config = AMCoConfig
    head_kind = "concat"

    def __init__(self, config: AMCoConfig, ctx):
        super().__init__(config, ctx)
        check_modulation_window("amco", config.modulation_starts, config.modulation_ends)
        self.l_t = 0.0
        self.dependent = {m: False for m in self.modalities}

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"amco needs two or more modalities; got {', '.join(modalities)}")

    def build_model(self) -> nn.ModuleDict:
        model = super().build_model()
        model["star"] = nn.Linear(self.ctx.num_classes, self.ctx.num_classes)
        return model

    def modulating(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def on_train_epoch_start(self, epoch: int) -> None:
        self.l_t = 0.0
        self.dependent = {m: False for m in self.modalities}

    def fuse(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model["star"](torch.stack(list(parts.values())).sum(0))

    def training_step(self, batch, epoch: int) -> StepOutput:
        mask = class_mask(self.l_t, self.config.eps, self.ctx.num_classes).to(self.ctx.device)
        self.l_t += epoch / 10
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        _, parts = self.model["head"](embeddings)
        window = self.modulating(epoch)
        if window:
            parts = {m: z * mask if self.dependent[m] else z for m, z in parts.items()}
        logits = self.fuse(parts)
        loss = self.cross_entropy(logits, batch.labels)
        if window:
            loss = loss + torch.stack([self.cross_entropy(z, batch.labels) for z in parts.values()]).sum()
        self.step(list(self.optimizers.values()), loss)
        if window:
            self.dependent = dependent_modalities(parts, self.config.sigma)
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        _, parts = self.model["head"](embeddings)
        return Prediction(self.fuse(parts), embeddings, parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor | None:
        """linear* of the summed parts of the modalities present (the absent ones left out)."""
        return self.fuse({m: z for m, z in prediction.modality_logits.items() if m in modalities})
