"""Balance between modalities, measured the same way for every method: exact Shapley values over
modality subsets, and conditional utilisation rates (as MILES).

Both start from a value table v(S): the accuracy of the model when it sees only the modalities in
S. With per-modality logits and the rule the method's head fuses them by (sum or mean), every
subset's logits come from one forward pass, so no encoder runs twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ValueTable = Mapping[frozenset[str], float]


def subsets(modalities: Sequence[str]) -> list[frozenset[str]]:
    """Every subset of the modalities, the empty one included (2^M of them)."""
    return [frozenset(c) for r in range(len(modalities) + 1) for c in itertools.combinations(modalities, r)]


def shapley_values(value: ValueTable, modalities: Sequence[str]) -> dict[str, float]:
    """Exact Shapley value of each modality: φ_m = Σ_{S ⊆ M∖{m}} |S|!(M−|S|−1)!/M! · (v(S∪{m}) − v(S)).
    Efficiency holds: Σ_m φ_m = v(M) − v(∅)."""
    n = len(modalities)
    phi = {}
    for m in modalities:
        others = [o for o in modalities if o != m]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total += weight * (value[s | {m}] - value[s])
        phi[m] = total
    return phi


def shapley_imbalance(phi: Mapping[str, float]) -> float | None:
    """(max φ − min φ) / Σ|φ|: 0 when every modality contributes alike, 1 at most."""
    scale = sum(abs(v) for v in phi.values())
    if len(phi) < 2 or scale == 0:
        return None
    return (max(phi.values()) - min(phi.values())) / scale


def conditional_utilisation(value: ValueTable, modalities: Sequence[str]) -> dict[str, float | None]:
    """u_m = (A_all − A_{¬m}) / A_all (MILES): how much the model's accuracy rests on modality m,
    with A_{¬m} the accuracy without m. None when A_all is 0."""
    everything = frozenset(modalities)
    a_all = value[everything]
    if a_all == 0:
        return dict.fromkeys(modalities)
    return {m: (a_all - value[everything - {m}]) / a_all for m in modalities}


def subset_values(
    parts: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    combine: str,
    empty_value: float,
) -> dict[frozenset[str], float]:
    """v(S) for every subset S from per-modality logits `parts` ([N, C] each): the subset's logits
    are the parts in S summed (`combine="sum"`: lsum and concat heads) or averaged (`"mean"`: the
    shared msum head); v(∅) is `empty_value` (e.g. the majority-class rate)."""
    import torch

    if combine not in ("sum", "mean"):
        raise ValueError(f"combine must be 'sum' or 'mean', got {combine!r}")
    values: dict[frozenset[str], float] = {frozenset(): float(empty_value)}
    for s in subsets(list(parts)):
        if not s:
            continue
        stacked = torch.stack([parts[m] for m in sorted(s)])
        logits = stacked.sum(0) if combine == "sum" else stacked.mean(0)
        values[s] = float((logits.argmax(1) == labels).float().mean().item())
    return values


def majority_rate(labels: torch.Tensor, num_classes: int) -> float:
    """Accuracy of always predicting the most frequent class: v(∅), a model with no modality."""
    import torch

    if len(labels) == 0:
        return float("nan")
    return float(torch.bincount(labels.long(), minlength=num_classes).max().item() / len(labels))


def subset_name(modalities: Iterable[str]) -> str:
    """A subset as the stored tables key it: sorted names joined by '+' ("audio+visual")."""
    return "+".join(sorted(modalities))


@dataclass(frozen=True)
class Balance:
    """The balance metrics of one evaluation, as `Evaluation` stores them (same field names)."""

    subset_accuracy: dict[str, float]  # v(S) per non-empty subset, keyed by `subset_name`
    majority_rate: float  # v(∅)
    shapley: dict[str, float]
    shapley_imbalance: float | None
    utilisation: dict[str, float | None]


def balance(value: ValueTable, modalities: Sequence[str]) -> Balance:
    """Shapley values, Shapley imbalance and conditional utilisation from a full value table."""
    phi = shapley_values(value, modalities)
    return Balance(
        subset_accuracy={subset_name(s): v for s, v in value.items() if s},
        majority_rate=value[frozenset()],
        shapley=phi,
        shapley_imbalance=shapley_imbalance(phi),
        utilisation=conditional_utilisation(value, modalities),
    )
