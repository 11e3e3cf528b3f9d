"""AMST-Joint: the joint module with skip training (AMST, ECML-PKDD 2025, §3.3, Algorithm 2).

Follows the official code (CXianRen/AMST, `code/amst_joint.py`, `AMST_J_Trainer.joint_train`):
  - one encoder per modality and a `concat` head: per-modality weight blocks W_m without bias
    and one shared bias b, so W[e_1; …; e_n] + b = Σ_m (W_m e_m + b/n);
  - per batch, one cross-entropy on the sub-head of the modalities trained this epoch
    (e mod s_m == 0): only their blocks (each with b/n, n = all modalities) are summed, so
    skipped encoders and their blocks get no gradient and no update; when every modality is
    skipped nothing is updated (as the code);
  - prediction: the full head on all modalities.
Options: `skipped_forward` ('official' | 'none') and `skip_enabled` as in AMST-Alt;
`skip_enabled=False` is the plain joint module (ablation row 1).
"""

from __future__ import annotations

from amst_bench.methods.amst_common import AmstOneModule, joint_update
from amst_bench.registry import register_method


@register_method("amst-joint")
class AmstJoint(AmstOneModule):
    family = "alternating"
    # one loss on the sub-head of the trained modalities
    extra_work_per_step = ""
    description = "AMST joint module: concat head, sub-head of active modalities, skip training"
    head_kind = "concat"
    update = staticmethod(joint_update)
