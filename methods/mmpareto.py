"""MMPareto: Pareto integration of the multimodal and unimodal gradients of each encoder.

Paper: Y. Wei, D. Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance",
ICML 2024 (arXiv 2405.17730). Code followed (read, not copied): GeWu-Lab/MMPareto_ICML2024
`code/MMPareto.py` (`train_epoch`), `code/min_norm_solvers.py` (`MinNormSolver`, two-vector case),
`code/models/models.py` (`AVClassifier`), `code/script/mmpareto.sh`. Second reference:
GeWu-Lab/BalanceBenchmark `balancemm/trainer/MMPareto_trainer.py`, which generalises the rule to
any number of modalities but, in the conflict case, assigns the solver's result to the loop
variable (`modality, min_norm = ...`) and so leaves that encoder's weights at [0, 0] (a zero
gradient): NOT copied.

Model (as `AVClassifier`): one encoder per modality; a fused head on the concatenated embeddings
(`concat`: one linear layer with bias = per-modality blocks + a shared bias); one linear unimodal
head per modality on its own embedding. Losses: L_mm = CE(fused) and L_m = CE(unimodal head m).

Per batch (MMPareto.py L96-193):
  1. g_mm^m, g_m^m = gradients of L_mm and of L_m with respect to encoder m's parameters;
  2. cos_m = cosine(flattened g_mm^m, flattened g_m^m). If cos_m > 0: weights (k_mm, k_m) =
     (0.5, 0.5); otherwise (cos_m <= 0, the conflict case) the min-norm (Pareto) point of the two
     gradients, min_c ||c g_mm + (1 - c) g_m||: c = 0.999 if <g_mm,g_m> >= ||g_mm||^2, 0.001 if
     <g_mm,g_m> >= ||g_m||^2, else c = (||g_m||^2 - <g_mm,g_m>) / ||g_mm - g_m||^2 (k_mm = c);
  3. per parameter tensor of encoder m: new = 2 k_mm g_mm + 2 k_m g_m; the gradient it gets is
     gamma * new * max(1, ||g_mm + g_m|| / ||new||) (the norm of the plain summed gradient, i.e. of
     L_mm + L_m, as the code's `three_norm`; magnitude kept at least as large, then x gamma = 1.5);
  4. heads: the plain gradients of L_mm + sum_m L_m (the code skips every parameter named `head`);
  5. one SGD step of everything.
Prediction: the fused head (the code's `out`); `modality_logits` are the fused head's parts
(W_m e_m + b/n, its sub-head), so balance metrics see the method's own fusion.

Three or more modalities: as BalanceBenchmark generalises it (each encoder's own unimodal loss
against the fused loss, one pair per encoder; the pair rule is exactly the two-modality one).
The original is audio-visual only.

Protocol: default the harness's (SGD lr 1e-3, momentum 0.9, wd 1e-4, StepLR(70, 0.1), 100
epochs). `preset=original` takes the code's optimiser settings (mmpareto.sh uses the argparse
defaults): SGD lr 0.002 and StepLR(30, 0.1); the code's 50 epochs are a protocol budget, set with
`--set epochs=50` (not changed by the preset). Recorded in `method_resolved`.

Deviations and choices:
  - Gradients come from `torch.autograd.grad` on one forward (the code calls backward three times
    with retain_graph, then once more on the sum): the same gradients, fewer passes.
  - The code's dot products for the solver include every tensor twice (its per-tensor list also
    holds the concatenation); the two-vector solution is invariant to that scale: not reproduced.
  - ||new|| = 0 (both gradients zero) gives a zero gradient (the code would divide by zero).
  - An encoder parameter with no gradient from a loss counts as a zero gradient (the code crashes).
  - One SGD per part (encoders, fused head, unimodal heads) instead of one over the model: the
    same update. DataParallel (BatchNorm statistics per GPU) is not reproduced.
  - The code evaluates on its test split every epoch and keeps the best (selection on test); here
    the protocol's validation selection applies.
  - Heads get the harness's `official_init` (Xavier, zero bias); the code's keep PyTorch's default.
  - Recorded per epoch: the share of batches in the conflict case per modality (`history`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, StepOutput
from amst_bench.train.models import unimodal_heads

PRESETS = ("harness", "original")
ORIGINAL_LR, ORIGINAL_LR_STEP = 0.002, 30  # MMPareto.py argparse defaults, used by mmpareto.sh


def min_norm_weight(g1g1: float, g1g2: float, g2g2: float) -> float:
    """c minimising ||c g1 + (1 - c) g2|| from the three dot products, with the solver's 0.999 /
    0.001 ends (MinNormSolver._min_norm_element_from2)."""
    if g1g2 >= g1g1:
        return 0.999
    if g1g2 >= g2g2:
        return 0.001
    return (g2g2 - g1g2) / (g1g1 + g2g2 - 2 * g1g2)


def pareto_weights(fused: torch.Tensor, unimodal: torch.Tensor) -> tuple[float, float, float]:
    """(k_mm, k_m, cosine) for one encoder from its flattened gradients: (0.5, 0.5) when the cosine
    is positive, the min-norm point otherwise."""
    cos = float(F.cosine_similarity(fused, unimodal, dim=0))
    if cos > 0:
        return 0.5, 0.5, cos
    dots = torch.stack([fused @ fused, fused @ unimodal, unimodal @ unimodal]).tolist()
    c = min_norm_weight(*dots)
    return c, 1.0 - c, cos


def integrate(fused: list[torch.Tensor], unimodal: list[torch.Tensor], k_mm: float, k_m: float,
              gamma: float) -> list[torch.Tensor]:
    """Per tensor: gamma * (2 k_mm g_mm + 2 k_m g_m), rescaled up (never down) to the norm of
    g_mm + g_m."""
    out = []
    for g_mm, g_m in zip(fused, unimodal, strict=True):
        new = 2 * k_mm * g_mm + 2 * k_m * g_m
        new_norm = torch.linalg.vector_norm(new)
        ratio = torch.linalg.vector_norm(g_mm + g_m) / new_norm
        scale = torch.where(new_norm > 0, ratio.clamp_min(1.0), torch.ones_like(ratio))
        out.append(gamma * scale * new)
    return out


def _grads(loss: torch.Tensor, params: list[nn.Parameter], retain: bool) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


@dataclass(frozen=True)
class MMParetoOptions:
    """preset   'harness' (the protocol's SGD and StepLR) | 'original' (lr 0.002, StepLR step 30)
    gamma       magnitude factor on the integrated encoder gradients (code: 1.5)"""

    preset: str = option("harness", choices=PRESETS)
    gamma: float = option(1.5, minimum=0.0)


@register_method("mmpareto")
class MMPareto(EncodersAndHead):
    family = "gradient modulation"
    extra_work_per_step = "every encoder backpropagated twice (fused and unimodal losses), gradient cosines"
    description = "MMPareto: per-encoder fused vs unimodal gradients, min-norm when they conflict, x1.5"
    Config = MMParetoOptions
    head_kind = "concat"  # AVClassifier.head: one Linear on the concatenated embeddings

    def __init__(self, config: MMParetoOptions, ctx):
        self.history: list[dict[str, Any]] = []
        self._conflicts: dict[str, int] = {}
        self._batches = 0
        super().__init__(config, ctx)
        if config.preset == "original":
            gamma = ctx.protocol.optimizer.lr_gamma
            self.schedulers = {k: torch.optim.lr_scheduler.StepLR(o, ORIGINAL_LR_STEP, gamma)
                               for k, o in self.optimizers.items()}

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset("mmpareto needs two or more modalities (fused vs unimodal losses)")

    def build_model(self) -> nn.ModuleDict:
        model = super().build_model()
        model["unimodal"] = unimodal_heads(self.modalities, self.embedding_dim, self.ctx.num_classes)
        return model

    @property
    def lr(self) -> float:
        return ORIGINAL_LR if self.config.preset == "original" else self.ctx.protocol.optimizer.lr

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {key: self.sgd(part.parameters(), lr=self.lr) for key, part in self.model.items()}

    # ------------------------------------------------------------------ training

    def on_train_epoch_start(self, epoch: int) -> None:
        self._conflicts = dict.fromkeys(self.modalities, 0)
        self._batches = 0

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        encoders, unimodal = self.model["encoders"], self.model["unimodal"]
        embeddings = self.encode(encoders, batch.inputs, self.modalities)
        fused, _ = self.model["head"](embeddings)
        loss_mm = self.cross_entropy(fused, batch.labels)
        losses = {m: self.cross_entropy(unimodal[m](embeddings[m]), batch.labels) for m in self.modalities}

        enc = {m: [p for p in encoders[m].parameters() if p.requires_grad] for m in self.modalities}
        head = [p for p in self.model["head"].parameters() if p.requires_grad]
        flat_enc = [p for m in self.modalities for p in enc[m]]
        g_mm = dict(zip(flat_enc + head, _grads(loss_mm, flat_enc + head, retain=True), strict=True))
        grads: dict[nn.Parameter, torch.Tensor] = {p: g_mm[p] for p in head}
        for i, m in enumerate(self.modalities):
            own = enc[m] + list(unimodal[m].parameters())
            g_m = dict(zip(own, _grads(losses[m], own, retain=i < len(self.modalities) - 1), strict=True))
            grads |= {p: g_m[p] for p in unimodal[m].parameters()}
            fused_g, uni_g = [g_mm[p] for p in enc[m]], [g_m[p] for p in enc[m]]
            k_mm, k_m, cos = pareto_weights(torch.cat([g.flatten() for g in fused_g]).float(),
                                            torch.cat([g.flatten() for g in uni_g]).float())
            self._conflicts[m] = self._conflicts.get(m, 0) + int(not cos > 0)
            grads |= dict(zip(enc[m], integrate(fused_g, uni_g, k_mm, k_m, self.config.gamma), strict=True))
        self._batches += 1

        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        for p, g in grads.items():
            p.grad = g.to(p.dtype)
        for o in self.optimizers.values():
            o.step()
        total = loss_mm.detach() + sum(loss.detach() for loss in losses.values())
        return StepOutput(total, fused.detach(), embeddings)

    def on_train_epoch_end(self, epoch: int) -> None:
        n = max(self._batches, 1)
        share = {m: c / n for m, c in self._conflicts.items()}
        self.history.append({"epoch": epoch, "conflict_share": share})

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        sched = next(iter(self.schedulers.values()))
        return dataclasses.asdict(self.config) | {
            "lr": self.lr, "lr_step": sched.step_size, "history": [dict(h) for h in self.history]}

    def extra_state(self) -> dict[str, Any]:
        return {"history": [dict(h) for h in self.history]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.history = [dict(h) for h in state["history"]]
