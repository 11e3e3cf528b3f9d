"""ReconBoost: modality-alternating boosting with a reconcilement term and global rectification.

Paper: C. Hua, Q. Xu, S. Bao, Z. Yang, Q. Huang, "ReconBoost: Boosting Can Achieve Modality
Reconcilement", ICML 2024 (arXiv 2405.09321). Code followed (read, not copied): huacong/ReconBoost
`train.py` (`main`: stage loop, phase 1, phase 2), `train_MSA.py` (three modalities),
`models/dynamic_net.py` (`DynamicNet`, `Head`), `schedule.py` (`fixed_mode`), README commands.
Second reference: GeWu-Lab/BalanceBenchmark `balancemm/trainer/ReconBoost_trainer.py` (one epoch
per phase, every modality per epoch: not followed).

Model: one encoder per modality; ONE shared head (`common_space=True`: the code sets every
learner's `fc` to `DynamicNet.head`, an MLP Linear(d, 256)-ReLU-Linear(256, C)); a learnable
scalar boost rate ρ (init `boost_rate` 1.0). Learner m = head(encoder_m(x_m)). The ensemble
predicts ρ · Σ_{m in ensemble} learner_m(x_m), over the modalities added so far (in the order
they were last added, as `DynamicNet.add` moves a re-added model to the end).

Stages (train.py L302-432): stage s picks modality M[s mod |M|] (`schedule.py` fixed mode:
audio, visual on CREMA-D/AVE; here the sorted modality names, so 3 modalities cycle
audio, text, visual; MOSEI's code order is text, visual, audio). A stage is
  phase 1, boosting (`epochs_per_stage`, 4 passes): only learner m (its encoder and the shared
    head) is trained, per sample with
      L = -w1 · mean_c(y_c log p_c) + w2 · mean_c(y_c q_c log p_c)
    p = softmax(learner_m), y one-hot, q = softmax of the ensemble WITHOUT m (no gradient; the
    other encoders forwarded in train mode, so BatchNorm statistics move, as the code). The w2
    term is the reconcilement term: it lowers the push on samples the historical ensemble already
    gets right, so the new learner is pushed towards what the others miss. With no other learner
    in the ensemble (the first stage) q is softmax over one constant column = 1, as the code's c0.
    After phase 1 learner m is added to (or moved to the end of) the ensemble.
  phase 2, global rectification (`correct_epoch`, 4 passes): CE of the ensemble's prediction,
    every member encoder, the head and ρ trained together.
Each phase starts a fresh SGD in the code (momentum buffers reset): here the optimisers' states
are cleared at each phase's first epoch (same update; the scheduled rate continues).

Mapping onto the harness: one harness epoch = one pass over the training data, so a stage spans
epochs_per_stage + correct_epoch epochs (100 epochs = 12.5 stages of 8), with validation after
every epoch (the code tests after each stage). Validation and test predict with the ensemble plus
the learner of the current stage when it is not in it yet (the code never evaluates before the
stage's learner is added; at epoch 0 the ensemble is otherwise empty).

Options: weight1 / weight2 default to the README's runs: CREMA-D 5 / 1, AVE 4 / 1; datasets with
text 1 / 0.25 (train_MSA.py defaults); anything else 5 / 1 (train.py defaults).

Protocol: default the harness's (SGD lr 1e-3, momentum 0.9, wd 1e-4, StepLR(70, 0.1) per epoch).
`preset=original`: the code's SGD lr 0.01 (m_lr = e_lr), weight decay 5e-4, and its `use_lr`
decay per stage: ×0.1 every 30 stages (CREMA-D and every other dataset), ×0.5 once at stage 40 on
AVE; the code's 1001 stages are not a budget here (the protocol's epochs are).

Deviations and choices:
  - Encoders from scratch (the protocol); the README's runs load pre-trained unimodal encoders
    (`--use_pretrain`, which puts both learners in the ensemble before stage 0): not done.
  - The code's `ga_loss` = MSE(softmax(out).detach(), softmax(previous learner).detach()) has no
    gradient (both sides detached): it changes nothing and is left out.
  - The code drops the last partial training batch (`drop_last=True`, needed by its fixed-size
    c0 expansion); the harness trains on every batch.
  - Probes (per-modality accuracy) see only the embeddings a step computes: a modality not yet in
    the ensemble and not being boosted is not forwarded (as the code), so its probe does not train.
  - `modality_logits` are ρ · learner_m for every modality; a subset's logits sum the members of
    the ensemble in it (no member: zero logits, a constant prediction).
  - Head initialisation: PyTorch's default (the code applies no init to `Head`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import Method, Prediction, StepOutput

PRESETS = ("harness", "original")
ORIGINAL_LR, ORIGINAL_WEIGHT_DECAY = 0.01, 5e-4
WEIGHTS = {"cremad": (5.0, 1.0), "ave": (4.0, 1.0)}
TEXT_WEIGHTS, DEFAULT_WEIGHTS = (1.0, 0.25), (5.0, 1.0)


class SharedHead(nn.Module):
    """The code's `Head` in the common space: Linear(d, 256) - ReLU - Linear(256, C)."""

    def __init__(self, embedding_dim: int, num_classes: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BoostRate(nn.Module):
    """ρ, the ensemble's learnable scale (`DynamicNet.boost_rate`)."""

    def __init__(self, initial: float):
        super().__init__()
        self.rate = nn.Parameter(torch.tensor(float(initial)))


def stage_and_phase(epoch: int, boost_epochs: int, rectify_epochs: int) -> tuple[int, str, int]:
    """(stage, 'boost' or 'rectify', epoch within the phase) of a harness epoch."""
    stage, offset = divmod(epoch, boost_epochs + rectify_epochs)
    if offset < boost_epochs:
        return stage, "boost", offset
    return stage, "rectify", offset - boost_epochs


def boosting_loss(logits: torch.Tensor, labels: torch.Tensor, others: torch.Tensor | None,
                  w1: float, w2: float) -> torch.Tensor:
    """Batch mean of -w1·mean_c(y log p) + w2·mean_c(y q log p); q = softmax(others) (detached),
    or 1 when there is no other learner."""
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    logp = logits.log_softmax(1)
    q = others.detach().softmax(1) if others is not None else torch.ones_like(logits[:, :1])
    per_sample = -w1 * (target * logp).mean(-1) + w2 * (target * q * logp).mean(-1)
    return per_sample.mean()


def ensemble_sum(parts: dict[str, torch.Tensor], members: list[str], like: torch.Tensor) -> torch.Tensor:
    """Σ of the members' parts in member order; zeros when there is none."""
    chosen = [parts[m] for m in members if m in parts]
    return torch.stack(chosen).sum(0) if chosen else torch.zeros_like(like)


@dataclass(frozen=True)
class ReconBoostOptions:
    """preset           'harness' (the protocol's SGD) | 'original' (lr 0.01, wd 5e-4, decay per stage)
    epochs_per_stage    boosting passes per stage (code 4)
    correct_epoch       global-rectification passes per stage (code 4; 0: none)
    weight1, weight2    boosting and reconcilement weights (None: from the dataset, see docstring)
    boost_rate          initial ρ (code 1.0)"""

    preset: str = option("harness", choices=PRESETS)
    epochs_per_stage: int = option(4, minimum=1)
    correct_epoch: int = option(4, minimum=0)
    weight1: float | None = option(None, minimum=0.0)
    weight2: float | None = option(None, minimum=0.0)
    boost_rate: float = 1.0


@register_method("reconboost")
class ReconBoost(Method):
    family = "alternating"
    # boosting epochs backpropagate one encoder (the others forwarded without gradient), rectification
    # epochs are a joint step: never more than the plain joint model
    extra_work_per_step = ""
    description = "ReconBoost: one modality boosted per stage with a reconcilement term, then rectification"
    Config = ReconBoostOptions

    def __init__(self, config: ReconBoostOptions, ctx):
        self.added: list[str] = []  # the ensemble's members, in `DynamicNet.add` order
        super().__init__(config, ctx)
        self.weight1, self.weight2 = self._weights(ctx)
        self._stage, self._phase, self._current = 0, None, self.stage_modality(0)
        if config.preset == "original":
            stage = config.epochs_per_stage + config.correct_epoch
            self.schedulers = {k: self._original_scheduler(o, stage) for k, o in self.optimizers.items()}

    def _weights(self, ctx) -> tuple[float, float]:
        if "text" in ctx.modalities:
            default = TEXT_WEIGHTS
        else:
            default = WEIGHTS.get(ctx.dataset.name, DEFAULT_WEIGHTS)
        w1, w2 = self.config.weight1, self.config.weight2
        return (default[0] if w1 is None else w1), (default[1] if w2 is None else w2)

    def _original_scheduler(self, optimizer, stage_epochs: int):
        if self.ctx.dataset.name == "ave":
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, [40 * stage_epochs], 0.5)
        return torch.optim.lr_scheduler.StepLR(optimizer, 30 * stage_epochs, 0.1)

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset("reconboost alternates between modalities: it needs at least two")

    def build_model(self) -> nn.ModuleDict:
        return nn.ModuleDict({
            "encoders": self.encoders(),
            "head": SharedHead(self.embedding_dim, self.ctx.num_classes),
            "boost": BoostRate(self.config.boost_rate),
        })

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Encoders; head and ρ together (ρ has no gradient in a boosting phase, so it is not
        stepped there, as the code's phase-1 SGD does not hold it)."""
        parts = {"encoders": list(self.model["encoders"].parameters()),
                 "head": [*self.model["head"].parameters(), *self.model["boost"].parameters()]}
        if self.config.preset == "harness":
            return {key: self.sgd(params) for key, params in parts.items()}
        momentum = self.ctx.protocol.optimizer.momentum
        return {key: torch.optim.SGD(params, lr=ORIGINAL_LR, momentum=momentum,
                                     weight_decay=ORIGINAL_WEIGHT_DECAY) for key, params in parts.items()}

    # ------------------------------------------------------------------ stages

    def phase(self, epoch: int) -> tuple[int, str, int]:
        return stage_and_phase(epoch, self.config.epochs_per_stage, self.config.correct_epoch)

    def stage_modality(self, stage: int) -> str:
        return self.modalities[stage % len(self.modalities)]

    def trained_modalities(self, epoch: int) -> tuple[str, ...]:
        stage, phase, _ = self.phase(epoch)
        if phase == "boost":
            return (self.stage_modality(stage),)
        return tuple(sorted(self.added))

    def on_train_epoch_start(self, epoch: int) -> None:
        self._stage, self._phase, within = self.phase(epoch)
        self._current = self.stage_modality(self._stage)
        if within == 0:  # the code builds a fresh SGD for each phase
            for o in self.optimizers.values():
                o.state.clear()

    def on_train_epoch_end(self, epoch: int) -> None:
        _, phase, within = self.phase(epoch)
        if phase == "boost" and within == self.config.epochs_per_stage - 1:
            self.add(self._current)

    def add(self, modality: str) -> None:
        """`DynamicNet.add`: append, or move to the end when already a member."""
        self.added = [m for m in self.added if m != modality] + [modality]

    # ------------------------------------------------------------------ training

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        if self._phase is None:  # called outside the trainer's loop
            self.on_train_epoch_start(epoch)
        if self._phase == "boost":
            return self._boost_step(batch)
        return self._rectify_step(batch)

    def _learner(self, modality: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model["encoders"][modality](x)
        return embedding, self.model["head"](embedding)

    def _boost_step(self, batch: Batch) -> StepOutput:
        m, rate = self._current, self.model["boost"].rate
        embedding, logits = self._learner(m, batch.inputs[m])
        embeddings, others = {m: embedding}, {}
        with torch.no_grad():
            for k in self.added:
                if k != m:
                    embeddings[k], others[k] = self._learner(k, batch.inputs[k])
        other_members = [k for k in self.added if k != m]
        history = rate.detach() * ensemble_sum(others, other_members, logits) if other_members else None
        loss = boosting_loss(logits, batch.labels, history, self.weight1, self.weight2)
        Method.step(list(self.optimizers.values()), loss)
        fused = rate.detach() * logits.detach() + (history if history is not None else 0)
        return StepOutput(loss.detach(), fused, embeddings)

    def _rectify_step(self, batch: Batch) -> StepOutput:
        rate = self.model["boost"].rate
        embeddings, parts = {}, {}
        for k in self.added:
            embeddings[k], parts[k] = self._learner(k, batch.inputs[k])
        logits = rate * ensemble_sum(parts, self.added, next(iter(parts.values())))
        loss = self.cross_entropy(logits, batch.labels)
        Method.step(list(self.optimizers.values()), loss)
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    # ------------------------------------------------------------------ prediction

    def members(self) -> list[str]:
        """The ensemble as evaluated: its members, plus the current stage's learner if not one yet."""
        current = self._current
        return self.added if current in self.added else [*self.added, current]

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        rate = self.model["boost"].rate
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        parts = {m: rate * self.model["head"](e) for m, e in embeddings.items()}
        fused = ensemble_sum(parts, self.members(), next(iter(parts.values())))
        return Prediction(fused, embeddings, parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor:
        members = [m for m in self.members() if m in modalities]
        return ensemble_sum(prediction.modality_logits, members, prediction.logits)

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "weight1": self.weight1, "weight2": self.weight2, "order": list(self.modalities),
            "ensemble": list(self.added),
            "lr": self.optimizers["encoders"].param_groups[0]["initial_lr"],
        }

    def extra_state(self) -> dict[str, Any]:
        return {"added": list(self.added)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.added = list(state["added"])
