"""Update rules that several unrelated methods share: the alternating update (MLA and AMST).

It follows the official AMST code, `alter_train` in `code/amst_alt.py` (MLA's `mla_new.py` is the
same loop). AMST-only updates live next to the AMST plugins (methods/amst_common.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.train.method import Method


def alternating_update(
    embeddings: dict[str, torch.Tensor],
    head: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    labels: torch.Tensor,
    trained: Iterable[str],
    before_step: Callable[[str], None] | None = None,
) -> list[torch.Tensor]:
    """For each trained modality in sorted order: its logits through the shared head alone, its own
    cross-entropy, and its own optimiser step (encoders and head). Returns the detached losses.

    Each step zeroes gradients to None first, so a modality's loss only ever reaches its own
    encoder and the head, and encoders of other modalities get no SGD update (no momentum, no
    weight decay) from it. `before_step(modality)` runs between backward and step (MLA's head
    projection).
    """
    losses = []
    for m in sorted(trained):
        logits, _ = head({m: embeddings[m]})
        loss = F.cross_entropy(logits, labels)
        if before_step is None:
            Method.step(optimizers, loss)
        else:
            Method.step(optimizers, loss, lambda m=m: before_step(m))
        losses.append(loss.detach())
    return losses
