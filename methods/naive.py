"""Naïve joint training: all encoders, one cross-entropy on the fused logits.

Follows the official AMST code (CXianRen/AMST, `code/baseline/naive_new.py` = `BasicTrainer` in
`code/common.py`, run by `Jobs/naive.sh` with `--fusion_method lsum`).
Deviations / notes:
  - Head `lsum` (a linear layer with bias per modality, logits summed), as the code ran it. The
    paper's text says embeddings are summed before one head; with linear heads the two differ only
    in having one bias per modality instead of one shared bias.
  - One SGD per part (encoders, head), as `init_optimizer_scheduler`.
"""

from __future__ import annotations

from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead


@register_method("naive")
class Naive(EncodersAndHead):
    family = "joint"
    extra_work_per_step = ""
    description = "joint training, per-modality logits summed (lsum), one loss (baseline)"
    head_kind = "lsum"  # training_step: EncodersAndHead's joint step, unchanged
