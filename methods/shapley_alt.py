"""Shapley-Alt: alternating unimodal steps ordered, and repeated, by per-modality Shapley values.

Paper: X. Shi, R. Zhang, J. Liu, Y. Liu, Q. Cheng, W. Lu, "Modality Equilibrium Matters:
Minor-Modality-Aware Adaptive Alternating for Cross-Modal Memory Enhancement", arXiv 2506.00030
(v1 2025-05, v2 2026-03). Code: none found (GitHub code and issue search on the title, the
method and EDM). Only the abstracts could be read (v1: "Shapley Value-based scheduling" of the
training sequence so that under-optimised modalities get enough learning; v2: an "EDM-ranked
weak-to-strong schedule"); the method section, its equations and hyper-parameters could not.

So this is a RECONSTRUCTION, not the paper's algorithm; every detail below is ours:
  - model and update as MLA (methods/mla.py): one encoder per modality, one shared linear head
    (`msum`); each step is `alternating_update` for one modality (its logits through the shared
    head alone, its own cross-entropy, zero_grad / backward / step of encoders and head).
  - φ_m: exact Shapley value (`report.balance.shapley_values`) of v(S) = validation accuracy of
    the mean of the shared head's logits of the modalities in S (absent ones left out of the
    mean, not zeroed; v(∅) = majority-class rate of the validation labels). Every subset comes
    from ONE validation pass's per-modality logits through the `subset_logits` hook (msum: the
    mean of the parts in S, = `subset_values(combine="mean")`; no encoder runs twice), which the
    trainer also uses for the results' Shapley fields: one definition. Taken from the trainer's
    own validation (`evaluation.subset_accuracy`, `majority_rate`) when it carries them, else
    measured by one extra validation pass here. Computed in `on_validation_end` of epochs e with
    e mod `every` == 0 and used from the next epoch on.
  - schedule, every batch: modalities by φ ascending (ties by name); the weakest first with `k`
    steps, then the others one step each. Before the first φ: sorted names, one step each (= MLA).
    Encoders are forwarded once per batch (as MLA); each extra step of the weakest forwards its
    encoder again on the same batch (the first graph is spent and its weights have moved), so
    its BatchNorm statistics move k times per batch.
  - prediction: the mean of the per-modality logits (as MLA and AMST).
Left out (their definitions could not be read; nothing is invented for them): the memory module,
the cross-modal mapping, the EDM metric, the LLM backbones.
Cost: none beyond the trainer's validation when it measures v(S); else one extra forward over
the validation split per computation (counted in epoch_seconds).
Recorded: `phi_history` in `method_resolved` (epoch, φ, v(S), order used from the next epoch);
φ, order and history are checkpointed, so a resumed run gives the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.report.balance import majority_rate, shapley_values, subsets
from amst_bench.report.metrics import Evaluation
from amst_bench.train.method import EncodersAndHead, Prediction, StepOutput
from amst_bench.train.updates import alternating_update


@dataclass(frozen=True)
class ShapleyAltConfig:
    """every  recompute φ after the validation of epochs e with e mod every == 0
    k      optimiser steps per batch for the modality with the lowest φ (the others: 1)"""

    every: int = option(1, minimum=1)
    k: int = option(2, minimum=1)


def table_from_evaluation(
    evaluation: Evaluation | None, modalities: tuple[str, ...]
) -> dict[frozenset[str], float] | None:
    """The value table the trainer's validation already measured (`subset_accuracy`, keyed
    "audio+visual", and `majority_rate`), or None where the evaluation does not carry it."""
    measured = getattr(evaluation, "subset_accuracy", None)
    empty = getattr(evaluation, "majority_rate", None)
    if not measured or empty is None:
        return None
    table = {frozenset(k.split("+")): float(v) for k, v in measured.items()}
    if set(table) != {s for s in subsets(sorted(modalities)) if s}:
        return None
    return table | {frozenset(): float(empty)}


def _by_size(item: tuple[frozenset[str], float]) -> tuple[int, list[str]]:
    return len(item[0]), sorted(item[0])


def weakest_first(phi: Mapping[str, float]) -> list[str]:
    """Modalities by φ ascending; ties by name."""
    return sorted(phi, key=lambda m: (phi[m], m))


@register_method("shapley-alt")
class ShapleyAlt(EncodersAndHead):
    family = "alternating"
    # φ comes from validation, after training
    extra_work_per_step = (
        "one loss, backward and optimiser step per modality; the lowest-φ one k times, its encoder "
        "forwarded again"
    )
    description = ("Shapley-guided alternating (reconstruction, arXiv 2506.00030): shared head, "
                   "weakest-φ modality first with k steps")
    Config = ShapleyAltConfig
    head_kind = "msum"

    def __init__(self, config: ShapleyAltConfig, ctx):
        super().__init__(config, ctx)
        self.phi: dict[str, float] | None = None
        self.order: list[str] = sorted(self.modalities)
        self.phi_history: list[dict[str, Any]] = []

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset("shapley-alt alternates between modalities: it needs at least two")

    # ------------------------------------------------------------------ training

    def schedule(self) -> list[str]:
        """This batch's update sequence, one entry per optimiser step."""
        if self.phi is None:
            return sorted(self.modalities)
        weakest, *others = self.order
        return [weakest] * self.config.k + others

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        encoders, head = self.model["encoders"], self.model["head"]
        embeddings = self.encode(encoders, batch.inputs, self.modalities)
        with torch.no_grad():  # training accuracy, from the model as it was before this step
            fused, _ = head({m: e.detach() for m, e in embeddings.items()})
        optimizers = list(self.optimizers.values())
        losses, stepped = [], set()
        for m in self.schedule():
            embedding = encoders[m](batch.inputs[m]) if m in stepped else embeddings[m]
            stepped.add(m)
            losses += alternating_update({m: embedding}, head, optimizers, batch.labels, [m])
        return StepOutput(torch.stack(losses).mean(), fused, embeddings)

    # ------------------------------------------------------------------ φ

    def on_validation_end(self, epoch: int, evaluation: Evaluation | None) -> None:
        if epoch % self.config.every:
            return
        values = table_from_evaluation(evaluation, self.modalities) or self.value_table()
        phi = shapley_values(values, sorted(self.modalities))
        self.phi, self.order = phi, weakest_first(phi)
        self.phi_history.append({
            "epoch": epoch,
            "phi": dict(sorted(phi.items())),
            "values": {"+".join(sorted(s)) or "{}": v for s, v in sorted(values.items(), key=_by_size)},
            "order": list(self.order),
        })

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor:
        """The msum fusion of the parts in `modalities` (their mean, in the head's order), as the
        engine's hook gives it for an msum head; here too so that φ never depends on an engine
        that lacks the hook, while the trainer's Shapley fields use this same function."""
        return torch.stack([z for m, z in prediction.modality_logits.items() if m in modalities]).mean(0)

    @torch.no_grad()
    def value_table(self) -> dict[frozenset[str], float]:
        """v(S) for every subset from one pass over the validation split, as the trainer's
        evaluation counts it: eval mode, `predict` under the run's precision, each subset's logits
        from that one prediction by `subset_logits`; v(∅) = majority-class rate."""
        was_training = self.model.training
        self.model.eval()
        bf16 = self.ctx.protocol.precision == "bf16"
        groups = [s for s in subsets(sorted(self.modalities)) if s]
        hits: dict[frozenset[str], torch.Tensor] = {}
        labels = []
        for batch in self.val_batches():
            with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
                pred = self.predict(batch.inputs)
            for s in groups:
                hits[s] = hits.get(s, 0) + (self.subset_logits(pred, s).argmax(1) == batch.labels).sum()
            labels.append(batch.labels)
        self.model.train(was_training)
        label_t = torch.cat(labels)
        values = {s: float(c.item()) / len(label_t) for s, c in hits.items()}
        return values | {frozenset(): majority_rate(label_t, self.ctx.num_classes)}

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "initial_order": sorted(self.modalities),
            "phi_history": [dict(h) for h in self.phi_history],
        }

    def extra_state(self) -> dict[str, Any]:
        return {"phi": self.phi, "order": list(self.order), "phi_history": list(self.phi_history)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.phi = state["phi"]
        self.order = list(state["order"])
        self.phi_history = list(state["phi_history"])
