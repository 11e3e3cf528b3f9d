"""OPM: on-the-fly prediction modulation (drop the dominant modality's features).

Paper: Y. Wei, D. Hu, H. Du, J.-R. Wen, "On-the-fly Modulation for Balanced Multimodal Learning",
T-PAMI 2024 (the journal extension of OGM-GE; its full text was not readable here).
Code followed (read, not copied): GeWu-Lab/BML_TPAMI2024 `code/models/Classifier.py` (`calcu_q`,
`Modality_drop.execute_drop`, `custom_autograd`, `Classifier.forward`), `code/main.py` (`train`:
warm-up, the step; `main`: AdamW and StepLR), `code/config.py` and `code/scripts/train_opm.sh`
(`--use_adam_drop --fusion_method concat --q_base 0.5 --lam 0.5 --p_exe 0.7`).
Second reference: GeWu-Lab/BalanceBenchmark `balancemm/trainer/OPM_trainer.py`, used only for its
three-modality ratio (it also skips training entirely outside its 0-80 window: not followed).

Mechanism, per training batch from epoch `warmup` on (the code: `warm_up = 1 if epoch <= 5`, epochs
from 0, so the drop starts in epoch 6):
  1. score s_m = Σ_batch softmax(part_m)[y] of the concat head's part W_m e_m + b/n (detached, as the
     code's t1/t2 with bias/2);
  2. r_m = tanh(relu(s_m / Σ_{k≠m} s_k − 1)) (two modalities: s_1/s_2, the code's `calcu_q`; three:
     BalanceBenchmark's sum over the others); q_m = clip(q_base·(1 + λ·r_m), 0, 1) if r_m > 0 else 0
     (only the dominant modality can have q > 0);
  3. with probability p_exe (one draw per batch) the drop runs: every sample's embedding of modality
     m is zeroed with probability q_m (independently per sample and modality), and ALL embeddings
     are multiplied by 1/(1 − θ), θ = Σ_m d_m q_m / Σ_m d_m (the mean q: equal widths), in the
     forward and the backward (the code's `custom_autograd`);
  4. loss = CE(concat head(dropped embeddings)); one step of every optimiser.
Before epoch `warmup`, and at evaluation, the embeddings are used as they are; prediction = the
concat head on all embeddings (the code's `val`, `warm_up=1`).

Defaults and presets:
  `harness` (default)  the protocol's SGD (lr 1e-3, momentum 0.9, wd 1e-4), StepLR(70, 0.1).
  `original`           the code's AdamW (lr 5e-5, weight decay 0.01, torch's betas) and StepLR(40,
                       0.1) (config.py); batch 32 in the code is a protocol field (`--set
                       batch_size=32`). q_base 0.5, λ 0.5, p_exe 0.7 and the warm-up (6 epochs) are
                       the same in both (train_opm.sh; config.py says q_base 0.4, overridden there).

Deviations and choices:
  - The code drops a sample from the batch when every modality of it was dropped; with q > 0 for at
    most one modality (r_m > 0 needs s_m > Σ_{k≠m} s_k, true for one m at most) that cannot happen,
    so it is not implemented.
  - Random draws use torch's generator on the device (the code: numpy for the p_exe draw, torch
    Bernoulli on the CPU for the mask); the run's seed and checkpoint cover them.
  - Drop and scale decisions are tensors (no host sync per batch); `last_q` keeps the batch's q.
  - One optimiser per part (encoders, head) instead of one over the model: the same update for
    SGD and AdamW (both per-parameter).
  - The code's OGM branch (`--use_modulation`) is off in the OPM script and not part of this method
    (`ogm-ge` is the gradient modulation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, StepOutput

ORIGINAL_ADAMW = {"lr": 5e-5, "weight_decay": 0.01}
ORIGINAL_LR_STEP = 40


@dataclass(frozen=True)
class OPMOptions:
    """preset  harness (the protocol's SGD and StepLR) | original (the code's AdamW 5e-5, StepLR 40)
    q_base  base drop probability of the dominant modality
    lam     λ: q = q_base·(1 + λ·tanh(relu(ratio − 1)))
    p_exe   probability that a batch runs the drop at all
    warmup  epochs (from 0) without drop; the code's `epoch <= 5` is 6"""

    preset: str = option("harness", choices=("harness", "original"))
    q_base: float = option(0.5, minimum=0.0)
    lam: float = option(0.5, minimum=0.0)
    p_exe: float = option(0.7, minimum=0.0)
    warmup: int = option(6, minimum=0)


def part_scores(parts: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """s_m = Σ_batch softmax(part_m)[y], stacked in the parts' order (a tensor: no host sync)."""
    return torch.stack([torch.softmax(p.detach().float(), 1).gather(1, labels[:, None]).sum()
                        for p in parts.values()])


def drop_probabilities(scores: torch.Tensor, q_base: float, lam: float) -> torch.Tensor:
    """q_m = clip(q_base·(1 + λ·r_m), 0, 1) where r_m = tanh(relu(s_m / Σ_{k≠m} s_k − 1)) > 0, else 0."""
    others = scores.sum() - scores
    r = torch.tanh(torch.relu(scores / others - 1))
    return torch.where(r > 0, (q_base * (1 + lam * r)).clamp(0.0, 1.0), torch.zeros_like(r))


class InverseKeepScale(torch.autograd.Function):
    """x / (1 − θ) in the forward and grad / (1 − θ) in the backward (the code's custom_autograd)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(scale)
        return x * scale

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def drop_features(embeddings: dict[str, torch.Tensor], q: torch.Tensor, p_exe: float
                  ) -> dict[str, torch.Tensor]:
    """With probability p_exe: zero modality m per sample with probability q_m, then scale all by
    1/(1 − mean q); otherwise the embeddings unchanged (as tensors, decided on the device)."""
    first = next(iter(embeddings.values()))
    execute = torch.rand((), device=first.device) < p_exe  # the code's rand >= 1 − p_exe
    theta = q.mean()
    scale = torch.where(execute, 1.0 / (1.0 - theta).clamp_min(1e-12), torch.ones_like(theta))
    dropped = {}
    for m, q_m in zip(embeddings, q, strict=True):
        e = embeddings[m]
        keep = torch.bernoulli((1 - q_m).expand(e.shape[0], 1).to(e.dtype))
        keep = torch.where(execute, keep, torch.ones_like(keep))
        dropped[m] = InverseKeepScale.apply(e * keep, scale.to(e.dtype))
    return dropped


@register_method("opm")
class OPM(EncodersAndHead):
    family = "feed-forward"
    # a no-grad head forward and a feature mask: nothing measurable
    extra_work_per_step = ""
    description = "OPM: drop the dominant modality's features with a probability from its score ratio"
    Config = OPMOptions
    head_kind = "concat"

    def __init__(self, config: OPMOptions, ctx):
        super().__init__(config, ctx)
        if config.preset == "original":
            for scheduler in self.schedulers.values():
                scheduler.step_size = ORIGINAL_LR_STEP
        self.last_q: torch.Tensor | None = None

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"opm needs two or more modalities; got {', '.join(modalities)}")

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.config.preset == "harness":
            return super().configure_optimizers()
        return {key: torch.optim.AdamW(part.parameters(), **ORIGINAL_ADAMW)
                for key, part in self.model.items()}

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        fused_input = embeddings
        if epoch >= self.config.warmup:
            with torch.no_grad():
                _, parts = self.model["head"](embeddings)
            self.last_q = drop_probabilities(part_scores(parts, batch.labels), self.config.q_base,
                                             self.config.lam)
            fused_input = drop_features(embeddings, self.last_q, self.config.p_exe)
        logits, _ = self.model["head"](fused_input)
        loss = self.cross_entropy(logits, batch.labels)
        self.step(list(self.optimizers.values()), loss)
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    def resolved_options(self) -> dict[str, Any]:
        original = self.config.preset == "original"
        return dataclasses.asdict(self.config) | {
            "optimizer": "adamw" if original else "sgd",
            "lr": ORIGINAL_ADAMW["lr"] if original else self.ctx.protocol.optimizer.lr,
            "lr_step": ORIGINAL_LR_STEP if original else self.ctx.protocol.optimizer.lr_step,
        }
