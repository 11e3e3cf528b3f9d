"""PMR: Prototypical Modal Rebalance (Fan et al., "PMR: Prototypical Modal Rebalance for Multimodal
Learning", CVPR 2023).

Codes followed:
  `amst` (default)  CXianRen/AMST `code/baseline/pmr3_new.py` (`PMRTrainer`), run by `Jobs/pmr.sh`
                    (`--fusion_method lsum --factor 0.1`; the job notes factor 1.0 for AVE).
  `original`        fanyunfeng-bit/Modal-Imbalance-PMR `main_Prototype_grad.py` (`train_epoch`,
                    `calculate_prototype`, `main`) with the flags of its `bash.sh` runs.

Mechanism (both codes):
  - joint training of both encoders and the `lsum` head with CE on the fused logits
    (`EncodersAndHead`'s step; the prototype term below is its `extra_loss`);
  - prototypes: per modality, the mean embedding of each class, computed with the model in eval mode
    and without gradient (pmr3_new.py:214-284, main_Prototype_grad.py:383-441), before every epoch's
    training, then blended with the previous ones: P = (1 - m)·mean + m·P_old (m = `momentum`,
    the codes' `momentum_coef`, the weight of the OLD prototypes);
  - prototype logits = −Euclidean distance (not squared) to each class prototype (`EU_dist`:
    `torch.cdist(p=2)` in AMST, sqrt of a dot product in the original); prototypes are constants;
  - score s_m = Σ_batch softmax(prototype logits_m)[y]; with (m1, m2) the sorted modalities,
    ρ = s_m1 / s_m2: ρ > 1 adds α·CE(prototype logits_m2), ρ < 1 adds α·CE(prototype logits_m1),
    ρ = 1 adds nothing (pmr3_new.py:171-202, main_Prototype_grad.py:156-178). The coefficient is a
    plain switch (no tanh / relu of ρ) and nothing is applied to the stronger modality;
  - the prototype term is added only in epochs `modulation_start` <= e <= `modulation_end`
    (inclusive, epochs from 0);
  - prediction: the fused (`lsum`) logits.

Presets (each value can be overridden by its option; `resolved_options()` records what ran):
  option            amst                                  original
  alpha             1.0                                   CREMA-D 5.0, AVE 2.0, else 1.0 (argparse)
  momentum          0.2                                   0.0 (every bash.sh run; argparse says 0.2)
  modulation_end    70                                    CREMA-D 100, AVE 70, else 100 (argparse)
  proto_data        AVE: validation split, else training split (both codes)
  proto_fraction    0.1 of the batches (AVE val: 1.0)     0.1 (AVE val: 1.0)
  batches used      smallest k with k/n >= fraction       max(1, floor(n·fraction)) (`all_num // 10`)
                    (pmr3_new.py:266-268)
  first blend       epoch 1 (old prototypes exist)        epoch 2 (main_Prototype_grad.py:435: the
                                                          update after epoch 0 is not blended)
  The original CREMA-D values come from its `--fusion_method sum` run (= `lsum`, bash.sh:130; that
  run also used lr 5e-4 and 2 frames, which are protocol settings not changed here). Its other
  CREMA-D runs used α 3.0 (film, ends 100; gated, ends 70) and α 2.0 (concat with Adam/AdaGrad).

Deviations and choices the codes / paper leave open:
  - Prototypes are computed at the start of epoch e; the original computes them before epoch 0 and
    after each epoch's training. The model is the same at both points (evaluation and the LR
    scheduler do not change weights), so the numbers agree; only the data order differs.
  - Training batches for the prototypes are drawn with a generator seeded from the run's seed and
    the epoch (the codes draw a fresh shuffle of the training DataLoader), so runs and resumed runs
    are deterministic. Validation batches (AVE) are taken in order, as the codes' unshuffled
    loader. `proto_data='train'` avoids looking at validation data on AVE (the codes' AVE branch
    uses the validation split, which this harness also selects the best epoch on).
  - Prototype inputs come from `train_batches(augment=True)`: like the AMST code, which reads its
    training DataLoader (random crops / flips) through the model in eval mode.
  - Class sums are a one-hot matmul (deterministic on CUDA, unlike index_add_).
  - A class absent from the prototype batches keeps its previous prototype (the codes divide by a
    zero count and get NaN, which turns the whole loss into NaN); at the first update it gets a
    zero vector and a warning.
  - The prototype CE and scores are computed only inside the modulation window (the codes also
    compute them outside it, for logging); the prototypes are still rebuilt every epoch, as both
    codes do (that cost is part of the paper's Table 3 time).
  - The reported training loss is CE + the prototype term, as the loss that was backpropagated.
  - The paper also describes a ratio-dependent coefficient and a prototype entropy regularisation
    (PER) on the dominant modality early in training; neither released code implements them, so
    they are not here.
  - AMST also computes prototype-classifier accuracies on val/test for its logs: not recorded.
  - Two modalities only (the ratio is between two scores, as both codes); otherwise
    UnsupportedDataset.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from amst_bench.data.tensors import Batch, num_batches
from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead

PRESETS: dict[str, dict[str, Any]] = {
    "amst": {
        "alpha": {}, "alpha_default": 1.0, "momentum": 0.2,
        "end": {}, "end_default": 70, "first_blend": 1, "rounding": "ceil",
    },
    "original": {
        "alpha": {"cremad": 5.0, "ave": 2.0}, "alpha_default": 1.0, "momentum": 0.0,
        "end": {"cremad": 100, "ave": 70}, "end_default": 100, "first_blend": 2, "rounding": "floor",
    },
}
VAL_PROTOTYPE_DATASETS = ("ave",)  # both codes build AVE prototypes from the validation split


@dataclass(frozen=True)
class PMROptions:
    """preset          'amst' (CXianRen/AMST pmr3_new.py, default) or 'original' (the PMR repo)
    alpha           weight of the weaker modality's prototype CE (None: from preset and dataset)
    momentum        weight of the old prototypes in the blend (None: from preset)
    proto_data      'auto' (validation split on AVE, training split elsewhere), 'train' or 'val'
    proto_fraction  share of the chosen split's batches used per update (None: 0.1 train, 1.0 val)
    modulation_start, modulation_end  first and last epoch (inclusive) with the prototype term
    """

    preset: str = field(default="amst", metadata={"choices": tuple(PRESETS)})
    alpha: float | None = None
    momentum: float | None = None
    proto_data: str = field(default="auto", metadata={"choices": ("auto", "train", "val")})
    proto_fraction: float | None = None
    modulation_start: int = 0
    modulation_end: int | None = None


def prototype_logits(embeddings: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """−Euclidean distance of each embedding [B, D] to each class prototype [C, D] → [B, C]."""
    return -torch.cdist(embeddings, prototypes, p=2)


def prototype_batch_count(n: int, fraction: float, rounding: str) -> int:
    """How many batches out of n the prototype update reads.

    'ceil': the AMST loop breaks after the first k with k / n >= fraction (pmr3_new.py:266-268);
    'floor': the original breaks once k >= n // 10, i.e. after max(1, floor(n·fraction)) batches.
    """
    if rounding == "ceil":
        return next((k for k in range(1, n + 1) if k / n >= fraction), n)
    return min(n, max(1, math.floor(n * fraction + 1e-9)))


@register_method("pmr")
class PMR(EncodersAndHead):
    family = "objective"
    extra_work_per_step = (
        "prototypes rebuilt before every epoch (a no-grad encoder pass over 10% of the training "
        "batches; AVE: the validation split)"
    )
    description = "PMR: prototype CE on the weaker modality (switch by prototype scores), lsum head"
    Config = PMROptions
    head_kind = "lsum"

    def __init__(self, config: PMROptions, ctx):
        super().__init__(config, ctx)
        preset = PRESETS[config.preset]
        name = ctx.dataset.name
        self.alpha = config.alpha if config.alpha is not None else preset["alpha"].get(
            name, preset["alpha_default"])
        self.momentum = config.momentum if config.momentum is not None else preset["momentum"]
        self.modulation_end = config.modulation_end if config.modulation_end is not None else (
            preset["end"].get(name, preset["end_default"]))
        self.proto_data = config.proto_data if config.proto_data != "auto" else (
            "val" if name in VAL_PROTOTYPE_DATASETS else "train")
        self.proto_fraction = config.proto_fraction if config.proto_fraction is not None else (
            1.0 if self.proto_data == "val" else 0.1)
        if not 0 < self.proto_fraction <= 1:
            raise UserError(f"pmr.proto_fraction: expected a share in (0, 1], got {self.proto_fraction}")
        self.first_blend = preset["first_blend"]
        self.rounding = preset["rounding"]
        self.prototypes: dict[str, torch.Tensor] | None = None

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) != 2:
            raise UnsupportedDataset(
                f"pmr supports exactly two modalities; dataset {self.ctx.dataset.name!r} has "
                f"{', '.join(modalities)}"
            )

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "alpha": self.alpha, "momentum": self.momentum, "modulation_end": self.modulation_end,
            "proto_data": self.proto_data, "proto_fraction": self.proto_fraction,
            "proto_batch_rounding": self.rounding, "first_blend_epoch": self.first_blend,
        }

    # ------------------------------------------------------------------ prototypes

    def prototype_batches(self, epoch: int) -> Iterator[Batch]:
        """The batches one update reads: a seeded shuffle of the training split, or the validation
        split in order (AVE), cut to `proto_fraction` of its batches."""
        bs = self.ctx.protocol.batch_size
        if self.proto_data == "val":
            split = self.ctx.dataset.val
            batches: Iterable[Batch] = self.val_batches()
        else:
            if self.ctx.train is None:
                raise RuntimeError("pmr: the training split is only available inside a run")
            split = self.ctx.train
            seed = (torch.initial_seed() * 1_000_003 + 7919 * (epoch + 1)) % (2**63)
            batches = self.train_batches(torch.Generator().manual_seed(seed), augment=True)
        count = prototype_batch_count(num_batches(split, bs), self.proto_fraction, self.rounding)
        for k, batch in enumerate(batches):
            if k == count:
                return
            yield batch

    @torch.no_grad()
    def update_prototypes(self, batches: Iterable[Batch], epoch: int) -> None:
        """Class means of each modality's embeddings (eval mode, no gradient) over `batches`,
        blended with the previous prototypes from `first_blend` epoch on."""
        encoders = self.model["encoders"]
        was_training = self.model.training
        self.model.eval()
        c, dim, dev = self.ctx.num_classes, self.ctx.embedding_dim, self.ctx.device
        sums = {m: torch.zeros(c, dim, device=dev) for m in self.modalities}
        counts = torch.zeros(c, device=dev)
        try:
            for batch in batches:
                embeddings = self.encode(encoders, batch.inputs, self.modalities)
                # class sums as a one-hot matmul: index_add_ is not deterministic on CUDA
                onehot = F.one_hot(batch.labels.to(dev).long(), c).float()
                for m, e in embeddings.items():
                    sums[m] += onehot.T @ e.float()
                counts += onehot.sum(0)
        finally:
            self.model.train(was_training)
        seen = (counts > 0).unsqueeze(1)
        old = self.prototypes
        if old is None and not bool(seen.all()):
            warnings.warn("pmr: a class has no sample in the prototype batches; its prototype is 0",
                          stacklevel=2)
        new = {}
        for m in self.modalities:
            mean = sums[m] / counts.clamp_min(1).unsqueeze(1)
            if old is not None:
                mean = torch.where(seen, mean, old[m])
                if epoch >= self.first_blend:
                    mean = (1 - self.momentum) * mean + self.momentum * old[m]
            new[m] = mean
        self.prototypes = new

    def on_train_epoch_start(self, epoch: int) -> None:
        self.update_prototypes(self.prototype_batches(epoch), epoch)

    # ------------------------------------------------------------------ training

    def modulating(self, epoch: int) -> bool:
        return self.config.modulation_start <= epoch <= self.modulation_end

    def prototype_weights(self, proto_logits: dict[str, torch.Tensor], labels: torch.Tensor
                          ) -> dict[str, torch.Tensor]:
        """α for the modality with the lower prototype score Σ_batch softmax[y], 0 for the other,
        0 for both on a tie: the codes' ρ = s_m1 / s_m2 compared with 1. Tensors, so the GPU is
        not synchronised per batch."""
        m1, m2 = self.modalities
        s1, s2 = (F.softmax(proto_logits[m].detach(), dim=1).gather(1, labels[:, None]).sum()
                  for m in (m1, m2))
        return {m1: self.alpha * (s1 < s2).float(), m2: self.alpha * (s1 > s2).float()}

    def extra_loss(self, batch, epoch, embeddings, logits, per_modality) -> torch.Tensor | None:
        """Inside the window: Σ_m weight_m · CE(prototype logits_m), added to the joint CE by
        `EncodersAndHead.training_step` (the stronger modality's weight is 0: no gradient)."""
        if not self.modulating(epoch):
            return None
        if self.prototypes is None:
            raise RuntimeError("pmr: prototypes are built in on_train_epoch_start; none yet")
        proto = {m: prototype_logits(embeddings[m], self.prototypes[m]) for m in self.modalities}
        weights = self.prototype_weights(proto, batch.labels)
        terms = [weights[m] * self.cross_entropy(proto[m], batch.labels) for m in self.modalities]
        return torch.stack(terms).sum()

    # ------------------------------------------------------------------ state

    def extra_state(self) -> dict[str, Any]:
        if self.prototypes is None:
            return {"prototypes": None}
        return {"prototypes": {m: p.detach().cpu().clone() for m, p in self.prototypes.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        protos = state.get("prototypes")
        self.prototypes = None if protos is None else {
            m: p.to(self.ctx.device) for m, p in protos.items()}
