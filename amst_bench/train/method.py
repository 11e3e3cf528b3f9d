"""The method plugin interface: the trainer owns the loop, a method overrides hooks.

Hooks, in the order the trainer calls them (names follow PyTorch Lightning where they can):
  check_supported(modalities)  raise UnsupportedDataset when the method cannot run on the data
  build_model()                the method's modules (encoders, heads), as one nn.ModuleDict
  configure_optimizers()       one optimiser per model part, as the official code does
  trained_modalities(epoch)    which modalities receive gradient this epoch (AMST's skip rule)
  on_train_epoch_start(epoch)
  training_split(epoch, split) the split this epoch's batches are drawn from (default: the training
                               split; sample valuation trains on a resampled copy)
  training_step(batch, epoch)  one batch; `EncodersAndHead`'s default is joint training:
    extra_loss(batch, epoch, embeddings, logits, per_modality)   a term added to the CE, or None
    on_before_optimizer_step(epoch, batch, embeddings, logits, per_modality)
                               after backward, before the optimiser steps (gradient surgery)
  on_train_epoch_end(epoch)
  on_validation_end(epoch, evaluation)
  predict(inputs)              fused logits for evaluation (how the method fuses at inference)
  subset_logits(prediction, modalities)
                               the fused logits the method would give seeing only those modalities,
                               from one `predict` (balance metrics: Shapley values, utilisation);
                               None when it has no such rule (unimodal methods: no balance metrics)
Class attributes: `test_every_epoch_default` (evaluate test every epoch unless the protocol's
`test_every_epoch` is set), `tf32` (None: torch defaults; True/False: forced for the run) and
`extra_work_per_step` (what its training does beyond the plain joint model's step; timing.md's †).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch, DatasetBundle, TensorSplit, iterate_batches
from amst_bench.errors import UserError
from amst_bench.protocol import Protocol
from amst_bench.report.metrics import Evaluation
from amst_bench.train.models import build_head


@dataclass
class MethodContext:
    """What a method knows about the run it is part of. `train` is the training split on the
    device, for methods that look at training data outside the batch loop (PMR's prototypes)."""

    dataset: DatasetBundle
    protocol: Protocol
    device: torch.device
    make_encoder: Callable[..., nn.Module]  # (modality, embedding_dim=None) -> encoder
    train: TensorSplit | None = None

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.dataset.modalities

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def embedding_dim(self) -> int:
        return self.protocol.embedding_dim


@dataclass
class StepOutput:
    """What one training step reports: a detached loss, fused logits (for train accuracy, may be
    None) and the embeddings it computed (detached later by the probes)."""

    loss: torch.Tensor
    logits: torch.Tensor | None
    embeddings: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """What `predict` returns: fused logits, the embeddings (read by the probes) and, where the
    method's head has them, the per-modality logits it fused (its own unimodal predictions)."""

    logits: torch.Tensor
    embeddings: dict[str, torch.Tensor]
    modality_logits: dict[str, torch.Tensor] = field(default_factory=dict)


# The families a method declares (`Method.family`), by the mechanism it balances with.
METHOD_FAMILIES = (
    "unimodal",  # one modality alone (the reference points)
    "joint",  # plain joint training
    "gradient modulation",  # rescales or recombines gradients (OGM-GE, AGM, MMPareto)
    "learning rate",  # per-modality learning rates (MSLR, MILES)
    "objective",  # adds or changes a loss term (PMR, MMCosine, CML, UMT, self-distillation)
    "alternating",  # trains modalities in turn (MLA, AMST, Shapley-alt, ReconBoost)
    "feed-forward",  # changes what the fusion sees during training (OPM, AMCo)
    "architecture",  # a different fusion module (Greedy's MMTM)
    "data",  # re-weights or re-samples training data (sample valuation)
    "re-initialisation",  # resets parts of the model (Diagnosing & Re-learning)
)


@dataclass(frozen=True)
class NoOptions:
    """Methods without options use this config."""


class Method:
    """Base class of every method plugin; subclasses override hooks, never the loop."""

    # Bumped when a change alters what the method computes, so that results stored by the older
    # code are not taken as this code's (the run identity includes it from 2 on).
    version: ClassVar[int] = 1

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Which kind of balancing the method does (leaderboard grouping and the site's filter), one of
    # METHOD_FAMILIES.
    family: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    # Evaluate the test split every epoch (as some official scripts do; their Table 3 time
    # includes it) unless the protocol's `test_every_epoch` is set explicitly.
    test_every_epoch_default: ClassVar[bool] = False
    # TF32 matmul/cuDNN for the run: None keeps torch's defaults (the official jobs' --no_tf32).
    tf32: ClassVar[bool | None] = None
    # What the method's training time holds beyond the plain joint model's step (forward, CE,
    # backward, one SGD step per part: the compute floor, train/floor.py), as a short phrase: extra
    # forward/backward passes or encoders, per-modality steps, work in its epoch hooks (prototypes,
    # teachers, trials). "" when nothing extra costs measurable compute (a coefficient, a rescale of
    # gradients already there). timing.md marks such methods † with it; set it in the registered
    # class's own body as a plain string, so the leaderboard reads it without importing torch.
    # Not part of what the method computes: changing it bumps no `version`.
    extra_work_per_step: ClassVar[str] = ""

    def __init__(self, config: Any, ctx: MethodContext):
        self.config = config
        self.ctx = ctx
        self.check_supported(ctx.modalities)
        self.modalities: tuple[str, ...] = self.select_modalities(ctx.modalities)
        self.model: nn.ModuleDict = self.build_model().to(ctx.device)
        self.optimizers: dict[str, torch.optim.Optimizer] = self.configure_optimizers()
        opt = ctx.protocol.optimizer
        self.schedulers = {
            key: torch.optim.lr_scheduler.StepLR(o, step_size=opt.lr_step, gamma=opt.lr_gamma)
            for key, o in self.optimizers.items()
        }

    # ------------------------------------------------------------------ hooks

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        """Raise UnsupportedDataset if this method cannot run on these modalities."""

    def select_modalities(self, available: tuple[str, ...]) -> tuple[str, ...]:
        """The modalities this method uses (unimodal baselines pick one)."""
        return available

    def build_model(self) -> nn.ModuleDict:
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Default: one SGD per top-level part of the model (encoders, head), as the official code."""
        return {key: self.sgd(part.parameters()) for key, part in self.model.items()}

    def trained_modalities(self, epoch: int) -> tuple[str, ...]:
        return self.modalities

    def on_train_epoch_start(self, epoch: int) -> None:
        pass

    def training_split(self, epoch: int, split: TensorSplit) -> TensorSplit:
        """The split this epoch's training batches come from (shuffled by the trainer), asked after
        `on_train_epoch_start`. Default: the training split itself."""
        return split

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        raise NotImplementedError

    def on_train_epoch_end(self, epoch: int) -> None:
        pass

    def on_validation_end(self, epoch: int, evaluation: Evaluation) -> None:
        """Called with the validation metrics, per-modality ones included (MSLR's dynamic rule)."""

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        """How the method predicts at evaluation time (its fusion)."""
        raise NotImplementedError

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor | None:
        """The fused logits with only `modalities` seen, from the parts of one `predict` (so no
        encoder runs twice): the value table behind the balance metrics. None: no such rule."""
        return None

    def resolved_options(self) -> dict[str, Any]:
        """The options that actually ran (defaults filled in from the dataset), for the record."""
        return dataclasses.asdict(self.config)

    @property
    def embedding_dim(self) -> int:
        """Width of the embeddings the encoders produce (the probes are built with it)."""
        return self.ctx.embedding_dim

    # ------------------------------------------------------------------ helpers for subclasses

    def sgd(self, params, lr: float | None = None) -> torch.optim.Optimizer:
        opt = self.ctx.protocol.optimizer
        return torch.optim.SGD(
            params,
            lr=opt.lr if lr is None else lr,
            momentum=opt.momentum,
            weight_decay=opt.weight_decay,
        )

    def train_batches(
        self, generator: torch.Generator | None = None, augment: bool = False
    ) -> Iterator[Batch]:
        """Batches of the training split, outside the trainer's loop (shuffled with a generator;
        with the training augmentation only if `augment`)."""
        if self.ctx.train is None:
            raise RuntimeError("the training split is only available inside a run")
        return iterate_batches(
            self.ctx.train,
            self.ctx.protocol.batch_size,
            generator,
            prepare=self.ctx.dataset.prepare,
            train=augment,
        )

    def val_batches(self) -> Iterator[Batch]:
        """Batches of the validation split in order, on the device, as evaluation sees them."""
        return iterate_batches(self.ctx.dataset.val, self.ctx.protocol.batch_size,
                               device=self.ctx.device, prepare=self.ctx.dataset.prepare)

    def encoders(self) -> nn.ModuleDict:
        return nn.ModuleDict({m: self.ctx.make_encoder(m) for m in self.modalities})

    @staticmethod
    def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    @staticmethod
    def encode(
        encoders: nn.ModuleDict, inputs: dict[str, torch.Tensor], modalities: tuple[str, ...] | set[str]
    ) -> dict[str, torch.Tensor]:
        """Embeddings of the given modalities (AMST's skipped encoders: methods/amst_common.py)."""
        return {m: encoders[m](inputs[m]) for m in encoders if m in modalities}

    @staticmethod
    def step(
        optimizers: list[torch.optim.Optimizer],
        loss: torch.Tensor,
        before_step: Callable[[], None] | None = None,
    ) -> None:
        """zero_grad (grads to None, so untouched parameters get no SGD update at all), backward,
        `before_step()` if given (gradients are there, nothing stepped yet), step."""
        for o in optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step()
        for o in optimizers:
            o.step()

    # ------------------------------------------------------------------ state (checkpoints)

    def extra_state(self) -> dict[str, Any]:
        """Method state outside modules and optimisers (PMR prototypes, MSLR rates…)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.load_extra_state(state["extra"])


class EncodersAndHead(Method):
    """The common shape: one encoder per modality and one fusion head (`head_kind`, see
    amst_bench.train.models); training is joint (one cross-entropy on the fused logits, plus
    `extra_loss`); prediction is the head on every modality."""

    head_kind: ClassVar[str] = "lsum"

    def build_model(self) -> nn.ModuleDict:
        head = build_head(self.head_kind, self.modalities, self.embedding_dim, self.ctx.num_classes)
        return nn.ModuleDict({"encoders": self.encoders(), "head": head})

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        """Encode every modality, fuse, CE (+ `extra_loss`), then zero_grad / backward /
        `on_before_optimizer_step` / step of every optimiser."""
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        logits, per_modality = self.model["head"](embeddings)
        loss = self.cross_entropy(logits, batch.labels)
        extra = self.extra_loss(batch, epoch, embeddings, logits, per_modality)
        if extra is not None:
            loss = loss + extra
        self.step(
            list(self.optimizers.values()),
            loss,
            lambda: self.on_before_optimizer_step(epoch, batch, embeddings, logits, per_modality),
        )
        return StepOutput(loss.detach(), logits.detach(), embeddings)

    def extra_loss(
        self,
        batch: Batch,
        epoch: int,
        embeddings: dict[str, torch.Tensor],
        logits: torch.Tensor,
        per_modality: dict[str, torch.Tensor],
    ) -> torch.Tensor | None:
        """A term added to the joint cross-entropy before backward (PMR's prototype loss)."""
        return None

    def on_before_optimizer_step(
        self,
        epoch: int,
        batch: Batch,
        embeddings: dict[str, torch.Tensor],
        logits: torch.Tensor,
        per_modality: dict[str, torch.Tensor],
    ) -> None:
        """Called with the gradients in place, before any optimiser steps (OGM-GE's modulation)."""

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        embeddings = self.encode(self.model["encoders"], inputs, self.modalities)
        logits, parts = self.model["head"](embeddings)
        return Prediction(logits, embeddings, parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor | None:
        """The head's own fusion of the subset's parts: summed (lsum; concat, whose parts carry b/n
        each, i.e. the paper's sub-head) or averaged (msum). Absent modalities are left out of the
        fusion, not fed zeros; with every modality this is `prediction.logits` bit for bit."""
        return fuse_parts(prediction.modality_logits, modalities, self.head_kind)


def fuse_parts(parts: dict[str, torch.Tensor], modalities: frozenset[str], head_kind: str) -> torch.Tensor:
    """The parts of `modalities` fused as a `head_kind` head fuses: mean for msum, sum otherwise
    (in the parts' order, as the heads stack them)."""
    stacked = torch.stack([z for m, z in parts.items() if m in modalities])
    return stacked.mean(0) if head_kind == "msum" else stacked.sum(0)


def check_modulation_window(method: str, starts: int, ends: int) -> None:
    """A UserError when `method`'s modulation window (its modulation_starts / modulation_ends
    options) ends before it starts."""
    if ends < starts:
        raise UserError(
            f"{method}.modulation_ends ({ends}) is before {method}.modulation_starts ({starts})")
