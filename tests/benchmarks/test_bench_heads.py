"""The fusion heads of amst_bench/train/models.py: forward and backward on a batch of embeddings."""

from __future__ import annotations

import pytest
import torch

from amst_bench.train.models import HEADS

pytestmark = pytest.mark.bench
MODALITIES = {2: ("audio", "visual"), 3: ("audio", "text", "visual")}


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", sorted(HEADS))
def test_head_forward_backward(benchmark, kind, count):
    modalities = MODALITIES[count]
    head = HEADS[kind](modalities, 512, 6)
    gen = torch.Generator().manual_seed(0)
    embeddings = {m: torch.randn(64, 512, generator=gen, requires_grad=True) for m in modalities}
    labels = torch.randint(0, 6, (64,), generator=gen)

    def step():
        head.zero_grad(set_to_none=True)
        logits, parts = head(embeddings)
        torch.nn.functional.cross_entropy(logits, labels).backward()
        return parts

    parts = benchmark(step)
    assert set(parts) == set(modalities)
