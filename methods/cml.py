"""CML: calibrated multimodal learning (confidence must not rise when a modality is removed).

Paper: H. Ma, Q. Zhang, C. Zhang, B. Wu, H. Fu, J. T. Zhou, Q. Hu, "Calibrating Multimodal
Learning", ICML 2023 (full text not readable here). Codes read (not copied):
  rank loss  QingyangZhang/CML `cpm/CPM_Nets.py` (`rank_loss`): per sample,
             ReLU((conf_fewer − conf_more)·sign − 0), summed over the batch, where conf = max
             softmax probability and sign = NOT(fewer-modality prediction right AND more-modality
             prediction wrong) ("trick 1"). The authors' code applies it to incomplete-view models
             (CPM-Nets, MIWAE), not to a late-fusion classifier.
  late fusion  GeWu-Lab/BalanceBenchmark `balancemm/trainer/CML_trainer.py` (`CMLTrainer`,
             `conf_loss`) and `configs/trainer_config.yaml` (CML: lam 0.1, window 0-80): how the loss
             is put on an encoders + concat-head model. Followed for the structure below.

Mechanism, per batch inside the window (modulation_starts ≤ e ≤ modulation_ends, epochs from 0):
  - one encoder per modality and a concat head; z = Σ_m (W_m e_m + b/M) the fused logits;
  - a removal order: a random permutation of the modalities drawn at the start of every epoch
    (BalanceBenchmark shuffles once per epoch); modalities are removed one at a time from its end:
    z' = z − (W_r e_r + b/M) + b/M (BalanceBenchmark's `out_s − unimodal[removed] + bias/M`: the
    removed modality's block is dropped, the full bias stays), M − 1 times;
  - loss = (CE(z) + Σ_removals CE(z')) / M + λ · Σ_removals rank(z_before, z_after), λ = `lam`;
  - outside the window: CE(z) alone.
Prediction: z on all modalities.

Defaults: the protocol's SGD (lr 1e-3, momentum 0.9, wd 1e-4), StepLR(70, 0.1); λ = 0.1 and the
window 0-80 (BalanceBenchmark's config). No `preset`: the authors' code trains other model kinds
(Adam on CPM-Nets / MIWAE) and BalanceBenchmark's optimiser (AdamW, StepLR(10)) is its toolkit-wide
default, not the method's.

Deviations and choices:
  - `rank=paper` (default) is the authors' per-sample rank loss with trick 1; BalanceBenchmark's
    `conf_loss` instead takes ReLU of the BATCH SUM of (conf_fewer − conf_more) and computes the
    trick-1 sign without using it: `rank=balancebenchmark` reproduces that.
  - BalanceBenchmark's unimodal logits for the concat head are assumed to be W_m e_m + b/M (its
    model code is not in the stored snapshot; this is the GeWu-Lab convention of the OGM-GE code).
  - The permutation uses torch's generator (BalanceBenchmark: Python's `random`), so the run's seed
    and checkpoint cover it; it is redrawn at the start of every epoch, resumed runs included.
  - Two modalities: one removal (the order only decides which); three: two removals, as
    BalanceBenchmark's three-modality branch (there /3, here /M in general).
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
from amst_bench.train.method import EncodersAndHead, StepOutput


@dataclass(frozen=True)
class CMLOptions:
    """lam   weight λ of the confidence rank loss
    rank  paper (per-sample ReLU with trick 1, the authors' code) | balancebenchmark (ReLU of the sum)
    modulation_starts / modulation_ends   window of epochs with the CML loss (from 0, inclusive)"""

    lam: float = option(0.1, minimum=0.0)
    rank: str = option("paper", choices=("paper", "balancebenchmark"))
    modulation_starts: int = option(0, minimum=0)
    modulation_ends: int = option(80, minimum=0)


def confidence_rank_loss(more: torch.Tensor, fewer: torch.Tensor, labels: torch.Tensor,
                         form: str = "paper") -> torch.Tensor:
    """Penalty for confidence that rises when modalities are removed: logits `more` (with the
    modality) and `fewer` (without). `paper`: Σ_i ReLU((c_fewer − c_more)_i · sign_i) with
    sign_i = 0 when fewer is right and more is wrong; `balancebenchmark`: ReLU(Σ_i (c_fewer − c_more)_i)."""
    conf_more, pred_more = F.softmax(more, dim=1).max(dim=1)
    conf_fewer, pred_fewer = F.softmax(fewer, dim=1).max(dim=1)
    gap = conf_fewer - conf_more
    if form == "balancebenchmark":
        return torch.relu(gap.sum())
    sign = ~((pred_fewer == labels) & (pred_more != labels))
    return torch.relu(gap * sign).sum()


@register_method("cml")
class CML(EncodersAndHead):
    family = "objective"
    # extra losses on the logits of the one forward
    extra_work_per_step = ""
    description = "CML: CE of the fused and modality-removed logits + lam x rank loss on confidence"
    Config = CMLOptions
    head_kind = "concat"

    def __init__(self, config: CMLOptions, ctx):
        super().__init__(config, ctx)
        self.order: list[str] = list(self.modalities)

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"cml needs two or more modalities; got {', '.join(modalities)}")

    def in_window(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def on_train_epoch_start(self, epoch: int) -> None:
        self.order = [self.modalities[i] for i in torch.randperm(len(self.modalities)).tolist()]

    def cml_loss(self, logits: torch.Tensor, parts: dict[str, torch.Tensor], labels: torch.Tensor
                 ) -> torch.Tensor:
        """(CE(z) + Σ CE(z')) / M + λ Σ rank(z, z'), removing modalities from the end of `order`."""
        n = len(self.modalities)
        bias_share = self.model["head"].bias / n
        more, ce, rank = logits, self.cross_entropy(logits, labels), logits.new_zeros(())
        for removed in reversed(self.order[1:]):
            fewer = more - parts[removed] + bias_share
            ce = ce + self.cross_entropy(fewer, labels)
            rank = rank + confidence_rank_loss(more, fewer, labels, self.config.rank)
            more = fewer
        return ce / n + self.config.lam * rank

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        logits, parts = self.model["head"](embeddings)
        if self.in_window(epoch):
            loss = self.cml_loss(logits, parts, batch.labels)
        else:
            loss = self.cross_entropy(logits, batch.labels)
        self.step(list(self.optimizers.values()), loss)
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)
