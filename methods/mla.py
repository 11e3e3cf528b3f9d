"""MLA: alternating unimodal training with one shared head.

Paper: X. Zhang, J. Yoon, M. Bansal, H. Yao, "Multimodal Representation Learning by Alternating
Unimodal Adaptation", CVPR 2024. Codes read:
  AMST   CXianRen/AMST `code/baseline/mla_new.py` (`MLATrainer`), run by `Jobs/mla.sh` with no MLA
         flags, so `--fusion_method msum` (its only choice, :83-85). It sets the DEFAULT here.
  orig   Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation `main.py`,
         `train_epoch` / `valid` with `--gs_flag` (:419-471, :622-651) and `utils/utils.py`
         (`GSPlugin`, :12-41).

Mechanism (default = AMST `alter_train`, mla_new.py:233-258):
  - one encoder per modality and one shared linear head (`msum`, AMST `MLASum`);
  - per batch, the encoders are forwarded once; then for each modality in sorted order: that
    modality's logits through the shared head alone, its own cross-entropy, zero_grad (to None:
    torch 2.1.2's default) / backward / step of the encoder and the head optimiser. This is
    exactly `amst_bench.train.updates.alternating_update`, which is called as is: a modality's loss
    reaches only its own encoder and the head; other encoders get no update at all.
  - prediction (`fusion`): 'even' (default) = mean of the per-modality logits, as the AMST paper
    (§4.2, per SPEC) evaluated MLA, the code's a50_v50 row and its msum output; 'entropy' = per
    sample, H_m = entropy of softmax(logits_m) over classes, w_m = exp(max_k H_k - H_m) /
    sum_j exp(max_k H_k - H_j) (lower entropy, higher weight), fused = sum_m w_m logits_m;
    'weighted' = fixed weights `fusion_weights` (the orig code's "fixed fusion").
    `modality_logits` are always the shared head's per-modality logits.

Head-gradient projection (`head_projection`, default False):
  The orig code's `GSPlugin.before_update` is meant to modify the shared head's weight gradient
  before each modality's step, but it only acts on a parameter named "module.weight" while it is
  given `fusion_module.fc_out`, an nn.Linear whose parameters are "weight" and "bias": the branch
  never runs, so the released code trains with the plain gradient (and would fail if it ran on
  768-d features: P is a hard-coded 512x512 identity; it would also grow an autograd graph through
  P every step since the features are not detached: likely the "memory leak" AMST's header names).
  AMST drops it (mla_new.py:3-9), hence False by default. True runs the intended body:
    r = batch mean of the CURRENT modality's embedding (1 x d, detached), k = P r^T,
    P <- P - k k^T / (alpha + r k),  P <- P / ||P||_F,  grad(W) <- grad(W) P^T
  with P = I (d x d) at the start, one P shared by all modalities and kept across epochs,
  alpha = 0.1 ** (i / N + 1) (i = batch index in the epoch from 0, N = batches per epoch), and
  nothing done on the very first head update of the run (orig `exp_count == 0`). The bias gradient
  and the encoders are untouched. P accumulates (OWM-style, regularised by alpha) the directions of
  the mean features seen so far, so the head's update is damped along them; the Frobenius
  normalisation also shrinks the whole weight gradient (||P||_F = 1 versus sqrt(d) for I).
  The paper's own equations could not be consulted here (only its abstract); this follows the code.

Deviations and choices:
  - AMST computes its "entropy" fusion on the encoders' embeddings, not on logits
    (mla_new.py:182, `calculate_gating_weights(embedding_dict)`: softmax over the 512 feature
    dimensions) and then weights the head's logits with it; 'entropy' here uses the logits, as the
    orig code does and as SPEC reports the paper does (its text was not available here).
    Softmax over 512 features is near-uniform, so AMST's weights stay near 1/M: in its released
    `Doc/Logs/MLA_CREMAD.log` the entropy row is within 0.2 points of a50_v50. The orig code's
    entropy (`calculate_entropy`, main.py:65-70) takes softmax over the BATCH (dim 0) and sums
    over the whole batch, giving one weight per modality per batch (predictions depend on batch
    composition); here it is per sample, over classes (AMST's dim fix). log_softmax is used for
    the entropy (torch.log(softmax) gives nan when a probability underflows to 0).
  - AMST records every fusion of its table (audio 30/40/50/60/70 %, and for three modalities only
    text .4 / visual .25 / audio .35: no even row, mla_new.py:120-124) plus entropy, each with its
    own best-validation epoch (`update_best_model`, :201-217); here one fusion per run (the trainer
    selects on it). 'weighted' reproduces a fixed row.
  - orig order is the model's output order: (audio, visual) on CREMA-D, (text, visual) on its m3ae
    two-modality datasets, (a, v, t) on IEMOCAP; here sorted names (audio, text, visual), as AMST.
  - orig uses one SGD over the whole model, AMST (and here) one per part (encoders, head): the same
    update (SGD state is per parameter, same hyper-parameters, both stepped every time).
  - orig zeroes with `optimizer.zero_grad()`, whose default depends on the torch version (< 2.0:
    zero tensors, so a later modality's step also applies momentum and weight decay to the earlier
    modalities' encoders); its torch version is not recorded. Here gradients go to None (AMST).
  - orig fixed fusion weights: the first model output (audio on CREMA-D, text on MVSA/Food-101)
    0.55 (`main(av_alpha=0.55)`, :968), the other 0.45; three modalities a .35, v .25, t .4 (:56-58).
    Set them with `--set mla.fusion=weighted --set mla.fusion_weights.audio=0.55 ...`.
  - orig selects on the test set (no validation split); never done here.
  - test is evaluated every epoch by default, as AMST's `need_run_test` (always True for MLA; its
    Table 3 time includes it): `test_every_epoch_default`; `--set test_every_epoch=false` turns it
    off. The run still reports test at the best validation epoch (AMST: per fusion row).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from amst_bench.data.tensors import Batch, num_batches
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, Prediction, StepOutput
from amst_bench.train.updates import alternating_update

FUSIONS = ("even", "entropy", "weighted")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy of softmax(logits) over the classes."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def entropy_weights(parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MLA's test-time weights, per sample: w_m = exp(max_k H_k - H_m) / sum_j exp(max_k H_k - H_j),
    returned as [B, 1] columns so they broadcast over the logits."""
    names = list(parts)
    h = torch.stack([entropy(parts[m]) for m in names], dim=1)  # [B, M]
    w = torch.exp(h.max(dim=1, keepdim=True).values - h)
    w = w / w.sum(dim=1, keepdim=True)
    return {m: w[:, i : i + 1] for i, m in enumerate(names)}


@dataclass(frozen=True)
class MLAConfig:
    """fusion           'even' (mean of per-modality logits, AMST), 'entropy' (paper, on logits) or
                     'weighted' (fixed weights, orig code's fixed fusion)
    fusion_weights   per-modality weights for 'weighted' (`--set mla.fusion_weights.audio=0.55`)
    head_projection  project the shared head's weight gradient (orig GSPlugin, never run there)"""

    fusion: str = field(default="even", metadata={"choices": FUSIONS})
    fusion_weights: dict[str, float] | None = None
    head_projection: bool = False


@register_method("mla")
class MLA(EncodersAndHead):
    version = 2  # 2: test evaluated every epoch, as the official MLA script
    family = "alternating"
    extra_work_per_step = "one loss, backward and optimiser step per modality"
    description = "MLA: alternating unimodal steps through one shared head; even/entropy fusion (baseline)"
    Config = MLAConfig
    head_kind = "msum"
    test_every_epoch_default = True  # mla_new.py `need_run_test`: always

    def __init__(self, config: MLAConfig, ctx):
        self._check_weights(config, ctx.modalities)
        super().__init__(config, ctx)
        d = ctx.embedding_dim
        self.projection: torch.Tensor | None = (
            torch.eye(d, device=ctx.device) if config.head_projection else None
        )
        self.projection_steps = 0  # head updates so far (orig `exp_count`)
        self._batch_index = 0
        self._batches_per_epoch = num_batches(ctx.dataset.train, ctx.protocol.batch_size)

    @staticmethod
    def _check_weights(config: MLAConfig, modalities: tuple[str, ...]) -> None:
        weights = config.fusion_weights
        if config.fusion != "weighted":
            if weights:
                raise UserError("mla.fusion_weights only applies with --set mla.fusion=weighted")
            return
        weights = dict(weights or {})
        if set(weights) != set(modalities):
            raise UserError(f"mla.fusion=weighted needs a weight for each of {', '.join(modalities)} "
                            f"(got {', '.join(sorted(weights)) or 'none'}); "
                            f"e.g. --set mla.fusion_weights.{modalities[0]}=0.5")

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset("mla alternates between modalities: it needs at least two")

    # ------------------------------------------------------------------ training

    def on_train_epoch_start(self, epoch: int) -> None:
        self._batch_index = 0

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        head = self.model["head"]
        with torch.no_grad():  # training accuracy, from the model as it was before this step
            _, parts = head({m: e.detach() for m, e in embeddings.items()})
            fused = self.fuse(parts)
        project = None
        if self.config.head_projection:  # between each modality's backward and its step
            project = lambda m: self.project_head_gradient(embeddings[m])  # noqa: E731
        losses = alternating_update(
            embeddings, head, list(self.optimizers.values()), batch.labels, self.modalities, project
        )
        self._batch_index += 1
        return StepOutput(torch.stack(losses).mean(), fused, embeddings)

    @torch.no_grad()
    def project_head_gradient(self, embedding: torch.Tensor) -> None:
        """One call per head update: update P with this modality's mean embedding and project the
        head weight's gradient (module docstring); the run's first update is left alone."""
        first = self.projection_steps == 0
        self.projection_steps += 1
        if first:
            return
        p = self.projection
        alpha = 0.1 ** (self._batch_index / self._batches_per_epoch + 1)
        r = embedding.detach().float().mean(dim=0, keepdim=True)  # [1, d]
        k = p @ r.T  # [d, 1]
        p = p - (k @ k.T) / (alpha + r @ k)
        p = p / torch.linalg.matrix_norm(p)  # Frobenius
        self.projection = p
        weight = self.model["head"].fc.weight
        weight.grad = (weight.grad.float() @ p.T).to(weight.grad.dtype)

    # ------------------------------------------------------------------ prediction

    def fuse(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.config.fusion == "even":
            return torch.stack(list(parts.values())).mean(dim=0)
        if self.config.fusion == "entropy":
            weights = entropy_weights(parts)
        else:
            weights = self.config.fusion_weights
        return torch.stack([weights[m] * z for m, z in parts.items()]).sum(dim=0)

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        _, parts = self.model["head"](embeddings)
        return Prediction(self.fuse(parts), embeddings, parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor:
        """`fuse` on the subset's parts: even = their mean, entropy = weights recomputed over them
        (one modality: its own logits), weighted = their fixed weights, not renormalised (a
        positive scale: the argmax, hence the accuracy, is the same)."""
        return self.fuse({m: z for m, z in prediction.modality_logits.items() if m in modalities})

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {"update_order": sorted(self.modalities)}

    def extra_state(self) -> dict[str, Any]:
        p = self.projection
        return {"projection": None if p is None else p.cpu(), "projection_steps": self.projection_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        p = state["projection"]
        self.projection = None if p is None else p.to(self.ctx.device)
        self.projection_steps = state["projection_steps"]
