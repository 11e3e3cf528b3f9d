"""AMST-Auto-Full: AMST-Full with its skip parameters chosen from early convergence rates.

Beyond the paper (AMST, ECML-PKDD 2025, §3.2's initial estimate of s_m from the accuracy rates of
change, automated as its conclusion's future work). Training is AMST-Full's (official code
CXianRen/AMST, `code/amst_full.py`, `AMST_F_Trainer`; here `AmstFull`, with its `joint_loss`
option); both modules follow the one chosen schedule. The rates come from the probes, which read
the alternating module's embeddings (as AMST-Full's per-modality accuracy). The warm-up, the rule
choosing s_m, the phase, `readjust_every`, the record and the checkpointed state are amst-auto's,
every choice listed in methods/amst_auto.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from amst_bench.methods.amst_auto import AutoSkip, AutoSkipOptions
from amst_bench.methods.amst_full import AmstFull, AmstFullOptions
from amst_bench.registry import register_method


@dataclass(frozen=True)
class AutoFullOptions(AutoSkipOptions, AmstFullOptions):
    """amst-auto's options and AMST-Full's `joint_loss`."""


@register_method("amst-auto-full")
class AmstAutoFull(AutoSkip, AmstFull):
    family = "alternating"
    # AMST-Full's step; the skip estimate runs after validation
    extra_work_per_step = (
        "two modules (alternating and joint) with their own encoders, a backward and optimiser step per "
        "trained modality in each"
    )
    description = "AMST-Full with s_m chosen from warm-up convergence rates (beyond the paper)"
    Config = AutoFullOptions
