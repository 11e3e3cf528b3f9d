"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement.

Paper: Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022. Codes followed (read, not copied):
  `amst` (default)  CXianRen/AMST `code/baseline/ogm3_new.py`, `OGMTrainer.train_method`
                    (L51-151), run by `Jobs/ogm3.sh` with `--fusion_method lsum` and no `--alpha`
                    (so 0.1, L46; `Doc/Logs/OGM_CREMAD.log` confirms alpha 0.1, window 0-50).
  `original`        GeWu-Lab/OGM-GE_CVPR2022 `main.py`, `train_epoch` (L57-161); alpha from the
                    README ("alpha=0.1 for VGGSound and alpha=0.8 for CREMA-D", L150-151; its
                    "default modulation setting" L130 is concat, alpha 0.1).

Mechanism, per batch (one cross-entropy on the fused logits of all encoders):
  1. score s_m = Σ_batch softmax(logit part of m)[y]: the part is what the head sums for m,
     `lsum` W_m e_m + b_m (own bias), `concat` W_m e_m + b/n (ogm3_new L54-61 via `get_out_m`;
     main.py L82-93, 105-106: same split, bias/2 for concat, full fc_x/fc_y bias for sum);
  2. ratio ρ_m = s_m / Σ_{k≠m} s_k (ogm3_new L103-114); for two modalities this is s_a/s_v and
     its inverse, as main.py L108-109;
  3. the modality with the largest ρ gets k = 1 − tanh(α·relu(ρ)), every other k = 1
     (ogm3_new L117-122; main.py L119-124). Ties go to the first modality in sorted order
     (Python `max` over the sorted dict; main.py modulates audio when ρ_v = 1);
  4. within the window modulation_starts ≤ epoch ≤ modulation_ends (both inclusive, epochs from
     0: 0-50 is 51 epochs; ogm3_new L124, main.py L132), for EVERY modality and every encoder
     parameter whose gradient is 4-D (conv kernels; BatchNorm, linear and embedding weights are
     untouched; the head is never modulated): g ← k·g + N(0, std(g) + 1e-8), std of the
     unmodulated gradient (ogm3_new L136-142; main.py L136-148). `noise=False` is plain OGM
     (main.py `--modulation OGM`, L140-141);
  5. SGD steps of the head and encoders (weight decay is added inside SGD, so not modulated).
Steps 1-4 run in `on_before_optimizer_step` (after backward, before any step, where the codes do
it); the forward, loss and steps are `EncodersAndHead`'s joint training step.
Prediction: the fused logits; `modality_logits` are the head's parts.

On text datasets the ResNet18 encoders' 512→768 projection is a 1×1 conv (`OutConv`, the code's
`out_conv`), so its 4-D gradient is modulated and noised like the other convs, as in the code.

Three modalities: the AMST copy generalises ρ as in step 2 and modulates the arg-max modality
even when its ρ < 1 (no ρ > 1 test; with three equal scores each ρ = 0.5). We follow it. Only 4-D
gradients are touched, so a text encoder (RoBERTa there, the tiny text encoder here) is never
modulated nor noised even when it dominates, exactly as in the code. The original code is
audio-visual only: `original` raises UnsupportedDataset for anything but two modalities (any
pair is accepted; the sorted first one plays audio's role, which only matters for ties).

Presets differ only in the alpha default, the fusion default and three-modality support; both
codes put noise on all modalities (SPEC says `original` noises only the modulated one: it does
not, main.py L136-148 adds noise to audio and visual alike, modulated or not).
Alpha: `amst` 0.1 for every dataset; `original` 0.8 for CREMA-D, else 0.1 (README; the README
names no value for AVE or Kinetics-Sounds: our choice). Fusion: `amst` lsum (Jobs/ogm3.sh;
ogm3_new's own default is concat), `original` concat (main.py L26; its `sum` is our `lsum`).

Deviations and choices:
  - The coefficient is 1 − tanh(α·ρ) as both codes and the paper's Eq. 10 write it, NOT
    1 − tanh(α·(ρ − 1)) as SPEC says; at a tie (ρ = 1) both codes still modulate (k = 1 − tanh(α)).
  - Noise is drawn as randn·(std + 1e-8) on the device (same law as `normal_(0, std.item()+1e-8)`,
    without a host sync per tensor); random streams therefore differ from the codes'. The paper's
    N(0, Σ_sgd) is the code's isotropic per-tensor std.
  - Scores come from the head parts of the training forward (AMST recomputes them in a no-grad
    forward on detached embeddings: same values), cast to float32.
  - A 4-D parameter without a gradient is skipped (the codes would crash on `None.size()`).
  - One SGD per part (AMST); main.py has one SGD over everything (same update) and DataParallel
    (BatchNorm statistics per GPU: not reproduced).
  - main.py's `valid` reports per-modality accuracy of `sum` with bias/2 (L194-198) although it
    trains with the full bias; our modality logits are the head parts (full bias) in both presets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from amst_bench.errors import UnsupportedDataset
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead

PRESETS = ("amst", "original")
FUSIONS = ("lsum", "concat")
PRESET_FUSION = {"amst": "lsum", "original": "concat"}


def resolve_alpha(preset: str, dataset: str, alpha: float | None) -> float:
    """An explicit alpha wins; else `amst` 0.1 everywhere, `original` 0.8 on CREMA-D, 0.1 elsewhere."""
    if alpha is not None:
        return float(alpha)
    if preset == "original" and dataset == "cremad":
        return 0.8
    return 0.1


def modality_scores(parts: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """s_m = sum over the batch of softmax(part_m)[true class] (one host sync for all modalities)."""
    names = sorted(parts)
    probs = [torch.softmax(parts[m].detach().float(), dim=1) for m in names]
    scores = torch.stack([p.gather(1, labels.view(-1, 1)).sum() for p in probs])
    return dict(zip(names, scores.tolist(), strict=True))


def ogm_coefficients(scores: dict[str, float], alpha: float) -> tuple[dict[str, float], dict[str, float]]:
    """Ratios ρ_m = s_m / Σ_{k≠m} s_k and coefficients: 1 − tanh(α·relu(ρ)) for the arg-max
    modality (ties: first in sorted order), 1 for the others."""
    names = sorted(scores)
    total = sum(scores.values())
    ratios = {m: scores[m] / (total - scores[m]) for m in names}
    dominant = max(names, key=lambda m: ratios[m])  # first maximum in sorted order
    coefficients = {m: 1.0 for m in names}
    coefficients[dominant] = 1.0 - math.tanh(alpha * max(ratios[dominant], 0.0))
    return ratios, coefficients


def modulate_gradients(encoders: nn.ModuleDict, coefficients: dict[str, float], noise: bool) -> None:
    """g ← k_m·g (+ N(0, std(g) + 1e-8) with noise) on every 4-D gradient of every encoder."""
    for m, encoder in encoders.items():
        k = coefficients[m]
        for p in encoder.parameters():
            g = p.grad
            if not p.requires_grad or g is None or g.dim() != 4:
                continue
            std = g.std() + 1e-8 if noise else None  # of the unmodulated gradient, as the codes
            g.mul_(k)
            if std is not None:
                g.add_(torch.randn_like(g) * std)


@dataclass(frozen=True)
class OgmOptions:
    """preset   'amst' (CXianRen/AMST ogm3_new.py, Table 1) | 'original' (GeWu-Lab main.py)
    alpha       None: the preset's value for the dataset (see resolve_alpha)
    fusion      None: the preset's head ('amst' lsum, 'original' concat)
    noise       GE's Gaussian noise on (OGM-GE) or off (plain OGM)
    modulation_starts / modulation_ends   the window of epochs, both inclusive, from 0"""

    preset: str = field(default="amst", metadata={"choices": PRESETS})
    alpha: float | None = None
    fusion: str | None = field(default=None, metadata={"choices": FUSIONS})
    noise: bool = True
    modulation_starts: int = 0
    modulation_ends: int = 50


@register_method("ogm-ge")
class OgmGe(EncodersAndHead):
    family = "gradient modulation"
    # scores from the step's own logits and a rescale (+ noise) of gradients already there
    extra_work_per_step = ""
    description = "OGM-GE: dominant modality's conv gradients scaled by 1-tanh(alpha*rho), plus noise"
    Config = OgmOptions

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset("ogm-ge needs at least two modalities (its ratio compares them)")
        if self.config.preset == "original" and len(modalities) != 2:
            raise UnsupportedDataset(
                f"ogm-ge preset 'original' (GeWu-Lab main.py) is audio-visual only, got "
                f"{len(modalities)} modalities; use preset=amst (the AMST generalisation)"
            )

    @property
    def head_kind(self) -> str:  # read by EncodersAndHead.build_model
        return self.config.fusion or PRESET_FUSION[self.config.preset]

    @property
    def alpha(self) -> float:
        return resolve_alpha(self.config.preset, self.ctx.dataset.name, self.config.alpha)

    def in_window(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def on_before_optimizer_step(self, epoch, batch, embeddings, logits, per_modality) -> None:
        """Steps 1-4 between backward and the SGD steps (where the codes modulate)."""
        # Computed every batch as the codes do; kept for inspection (not checkpoint state).
        self.last_ratios, self.last_coefficients = ogm_coefficients(
            modality_scores(per_modality, batch.labels), self.alpha
        )
        self.last_modulated = self.in_window(epoch)
        if self.last_modulated:
            modulate_gradients(self.model["encoders"], self.last_coefficients, self.config.noise)

    def resolved_options(self) -> dict[str, Any]:
        return asdict(self.config) | {"alpha": self.alpha, "fusion": self.head_kind}
