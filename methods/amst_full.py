"""AMST-Full: the alternating and the joint module side by side (AMST, ECML-PKDD 2025, §3.4).

Follows the official code (CXianRen/AMST, `code/amst_full.py`, `AMST_F_Trainer`):
  - two independent modules, each with its own encoders (4 encoders for 2 modalities), its own
    head (alternating: `msum`; joint: `concat`) and its own optimisers;
  - both follow the same skip rule; the alternating module trains as AMST-Alt;
  - the joint module: `joint_loss='official'` (default) trains it as the code does
    (`train_epoch` calls `alt_train` on it, line 374: per modality in sorted order, that
    modality's concat block W_m e_m + b/n alone, its own loss and step; `joint_train` is never
    called), which produced Table 1; `joint_loss='paper'` trains it with one loss on the sub-head
    of the trained modalities, as §3.3 of the paper describes (AMST-Joint's update);
  - prediction (`amst_full.py`:226): (Σ_m alternating logits_m + joint logits) / (M + 1), i.e. for
    two modalities the mean of [audio, visual, joint].
Notes / deviations:
  - per-modality accuracy comes from probes on the alternating module's embeddings only. The
    official code also creates and trains probes (`helpers`) on the joint module's embeddings but
    never reports them (`m_h_map` only gets `alt_*_h` keys: its `joint` entry reuses the `alt`
    name); here they are not created. Probes see detached embeddings, so the model is the same;
    only their small cost is missing from the timings;
  - `skipped_forward` ('official' | 'none') and `skip_enabled` as in AMST-Alt; with
    `skip_enabled=False` this is ablation row 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from amst_bench.data.tensors import Batch
from amst_bench.methods.amst_common import (
    AmstMethod,
    SkipOptions,
    encode_with_skips,
    joint_update,
    mean_loss,
)
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import Prediction, StepOutput
from amst_bench.train.models import build_head
from amst_bench.train.updates import alternating_update


@dataclass(frozen=True)
class AmstFullOptions(SkipOptions):
    """joint_loss: 'official' (per-modality losses on the joint module, as Table 1 ran) or
    'paper' (one joint loss on the sub-head, as §3.3 describes)."""

    joint_loss: str = option("official", choices=("official", "paper"))


@dataclass
class AmstFullPrediction(Prediction):
    """A Prediction that also keeps the joint module's per-modality concat blocks (W_m e_m + b/n),
    so that `subset_logits` can form the joint sub-head of any subset."""

    joint_parts: dict[str, torch.Tensor] = field(default_factory=dict)


@register_method("amst-full")
class AmstFull(AmstMethod):
    family = "alternating"
    extra_work_per_step = (
        "two modules (alternating and joint) with their own encoders, a backward and optimiser step per "
        "trained modality in each"
    )
    description = "AMST full: alternating + joint modules, logits averaged, skip training"
    Config = AmstFullOptions

    def build_model(self) -> nn.ModuleDict:
        ctx = self.ctx

        def module(head_kind: str) -> nn.ModuleDict:
            head = build_head(head_kind, self.modalities, ctx.embedding_dim, ctx.num_classes)
            return nn.ModuleDict({"encoders": self.encoders(), "head": head})

        return nn.ModuleDict({"alt": module("msum"), "joint": module("concat")})

    def configure_optimizers(self):
        return {
            f"{module}.{part}": self.sgd(self.model[module][part].parameters())
            for module in ("alt", "joint")
            for part in ("encoders", "head")
        }

    def _optimizers(self, module: str) -> list[torch.optim.Optimizer]:
        return [self.optimizers[f"{module}.encoders"], self.optimizers[f"{module}.head"]]

    def fuse(self, alt_emb: dict[str, torch.Tensor], joint_emb: dict[str, torch.Tensor]) -> Prediction:
        """(Σ_m alternating logits_m + joint logits) / (M + 1) over the modalities present; the
        per-modality logits reported are the alternating module's."""
        _, alt_parts = self.model["alt"]["head"](alt_emb)
        joint_logits, joint_parts = self.model["joint"]["head"](joint_emb)
        stacked = torch.stack([*alt_parts.values(), joint_logits])
        return AmstFullPrediction(stacked.sum(0) / (len(alt_parts) + 1), alt_emb, alt_parts, joint_parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor:
        """`fuse` seeing only S: (Σ_{m∈S} alt_m + joint(S)) / (|S| + 1), joint(S) the joint
        module's sub-head (its parts in S summed); with every modality, `prediction.logits`."""
        if not isinstance(prediction, AmstFullPrediction):
            raise TypeError("amst-full's subset_logits takes what its own predict() returned")
        alt = [z for m, z in prediction.modality_logits.items() if m in modalities]
        joint = torch.stack([z for m, z in prediction.joint_parts.items() if m in modalities]).sum(0)
        return torch.stack([*alt, joint]).sum(0) / (len(alt) + 1)

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        trained = self.trained_modalities(epoch)
        mode = self.config.skipped_forward
        alt_emb = encode_with_skips(self.model["alt"]["encoders"], batch.inputs, trained, mode)
        joint_emb = encode_with_skips(self.model["joint"]["encoders"], batch.inputs, trained, mode)
        with torch.no_grad():
            fused = self.fuse(
                {m: e.detach() for m, e in alt_emb.items()},
                {m: e.detach() for m, e in joint_emb.items()},
            ).logits
        losses = alternating_update(
            alt_emb, self.model["alt"]["head"], self._optimizers("alt"), batch.labels, trained
        )
        joint_opts = self._optimizers("joint")
        if self.config.joint_loss == "official":
            losses += alternating_update(
                joint_emb, self.model["joint"]["head"], joint_opts, batch.labels, trained
            )
        else:
            losses += joint_update(
                joint_emb, self.model["joint"]["head"], joint_opts, batch.labels, trained
            )
        fallback = self.cross_entropy(fused, batch.labels)
        return StepOutput(mean_loss(losses, fallback), fused, alt_emb)

    def predict(self, inputs):
        alt_emb = self.encode(self.model["alt"]["encoders"], inputs, self.modalities)
        joint_emb = self.encode(self.model["joint"]["encoders"], inputs, self.modalities)
        return self.fuse(alt_emb, joint_emb)
