"""AMST-Alt: the alternating module with skip training (AMST, ECML-PKDD 2025, §3.2, Algorithm 1).

Follows the official code (CXianRen/AMST, `code/amst_alt.py`, `AMST_A_Trainer.alter_train`):
  - one encoder per modality and one shared linear head (`msum`);
  - per batch, for each modality in sorted order that is trained this epoch (e mod s_m == 0,
    epochs from 0): logits of that modality alone through the shared head, its own
    cross-entropy, zero_grad / backward / step of the encoder and head optimisers;
  - prediction: the mean of the per-modality logits (even split, paper §4.2).
Deviations / options:
  - `skipped_forward`: 'official' (default) forwards a skipped encoder in train mode without a
    graph, as the code does (it builds one, then never backpropagates it; same numbers, less
    memory); 'none' does not forward it at all (faster, BatchNorm statistics frozen).
  - `skip_enabled=False` is the alternating module without skip (ablation row 3); with default
    skip parameters this is the same update as MLA's released code.
"""

from __future__ import annotations

from amst_bench.methods.amst_common import AmstOneModule
from amst_bench.registry import register_method
from amst_bench.train.updates import alternating_update


@register_method("amst-alt")
class AmstAlt(AmstOneModule):
    family = "alternating"
    extra_work_per_step = "one loss, backward and optimiser step per trained modality"
    description = "AMST alternating module: per-modality losses, shared head, skip training"
    head_kind = "msum"
    update = staticmethod(alternating_update)
