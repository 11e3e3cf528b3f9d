"""AMST-Auto-Joint: AMST-Joint with its skip parameters chosen from early convergence rates.

Beyond the paper (AMST, ECML-PKDD 2025, §3.2's initial estimate of s_m from the accuracy rates of
change, automated as its conclusion's future work). Training is AMST-Joint's (official code
CXianRen/AMST, `code/amst_joint.py`, `joint_train`; here `AmstJoint`: one loss on the sub-head of
the trained modalities); the warm-up, the rule choosing s_m, the phase, `readjust_every`, the
record and the checkpointed state are amst-auto's, every choice listed in methods/amst_auto.py.
"""

from __future__ import annotations

from amst_bench.methods.amst_auto import AutoSkip
from amst_bench.methods.amst_joint import AmstJoint
from amst_bench.registry import register_method


@register_method("amst-auto-joint")
class AmstAutoJoint(AutoSkip, AmstJoint):
    family = "alternating"
    # AMST-Joint's step; the skip estimate runs after validation
    extra_work_per_step = ""
    description = "AMST-Joint with s_m chosen from warm-up convergence rates (beyond the paper)"
