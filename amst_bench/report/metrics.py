"""Classification metrics and the across-seed aggregate (mean ± standard error).

torch is imported where tensors are used, so reading results (`status`, `leaderboard`) never loads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class Evaluation:
    """Metrics of one pass over a split. `modality_accuracy` comes from the linear probes (same
    for every method); `head_modality_accuracy` from the method's own per-modality logits, where
    its head has them."""

    accuracy: float
    macro_f1: float
    loss: float
    modality_accuracy: dict[str, float]
    head_modality_accuracy: dict[str, float] = field(default_factory=dict)
    # Balance (paper Fig. 4): per modality, the mean prediction entropy of each class's samples
    # (from the method's own per-modality logits where its head has them, else the probes'), and
    # the gap between the best and the worst modality's probe accuracy.
    class_entropy: dict[str, list[float | None]] = field(default_factory=dict)
    entropy_source: str = ""
    imbalance_gap: float | None = None
    # Balance from the method's own fusion restricted to modality subsets (report/balance.py; empty
    # or None for methods without per-subset logits, e.g. unimodal ones, and for older results):
    # v(S) per non-empty subset keyed "audio+visual", v(∅) = the majority-class rate, the Shapley
    # value φ_m per modality, the Shapley imbalance, and the conditional utilisation u_m.
    subset_accuracy: dict[str, float] = field(default_factory=dict)
    majority_rate: float | None = None
    shapley: dict[str, float] = field(default_factory=dict)
    shapley_imbalance: float | None = None
    utilisation: dict[str, float | None] = field(default_factory=dict)


def accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    return float((preds == labels).float().mean().item()) if len(labels) else float("nan")


def macro_f1(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes present in labels or predictions."""
    import torch

    preds, labels = preds.long().cpu(), labels.long().cpu()
    idx = labels * num_classes + preds
    cm = torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)
    tp = cm.diag().float()
    support = cm.sum(1).float()
    predicted = cm.sum(0).float()
    present = (support + predicted) > 0
    denom = support + predicted
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return float(f1[present].mean().item()) if present.any() else float("nan")


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) per sample."""
    import torch

    log_p = torch.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(1)


def class_means(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Mean of `values` over the samples of each class (None for a class with no sample)."""
    import torch

    values, labels = values.double().cpu(), labels.long().cpu()
    sums = torch.bincount(labels, weights=values, minlength=num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    return [float(s / c) if c else None for s, c in zip(sums.tolist(), counts.tolist(), strict=True)]


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n)); SE is None for one value."""
    n = len(values)
    if n == 0:
        return float("nan"), None
    mean = sum(values) / n
    if n == 1:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var) / math.sqrt(n)
