"""UMT: Uni-Modal Teacher (Du et al., "On Uni-Modal Feature Learning in Supervised Multi-Modal
Learning", ICML 2023).

Code followed: GeWu-Lab/BalanceBenchmark `balancemm/trainer/UMT_trainer.py` (`UMTTrainer`), with the
defaults of its `configs/trainer_config.yaml` (`UMT: scaling 10, modulation_starts 0,
modulation_ends 80`). No code by the paper's authors was found in the index this harness can read,
so BalanceBenchmark is the only code reference (a deviation risk).

Mechanism:
  - one unimodal teacher per modality (its own encoder + linear head, trained with cross-entropy on
    that modality alone), frozen;
  - the student is joint training (encoders + fusion head, CE on the fused logits) plus
    `scaling` · Σ_m MSE(teacher_m's encoder feature, student's encoder feature of m), the teacher
    forwarded without gradient on the same (augmented) batch; the feature term is applied only in
    epochs `modulation_starts` <= e <= `modulation_ends` (inclusive, epochs from 0), as
    UMT_trainer.py's `training_step`;
  - prediction: the student's fused logits (teachers are not used at inference).

Teachers. BalanceBenchmark loads the newest checkpoint of an earlier `unimodalTrainer_<modality>`
run. This harness drops a run's checkpoints when it finishes and keeps no weights, so the teachers
are trained inside the UMT run, before its first epoch: for each modality, the harness's unimodal
recipe (the protocol's encoder of the student's width, a one-modality `lsum` head, one SGD with the
protocol's rate / momentum / weight decay and its StepLR, the trainer's augmentation, shuffled with a
seeded generator) for `teacher_epochs` epochs (default: the protocol's epochs), keeping the epoch
with the best validation accuracy (first best), as a unimodal run selects. The teachers live in the
model (`model["teachers"]`, no optimiser of the student touches them), so checkpoints carry them and
a resumed run does not retrain them. Their training time is in epoch 0's seconds (UMT's real cost:
it needs its teachers); `method_resolved.teachers` records each teacher's best epoch, validation
accuracy and seconds, so the student's own time can be told apart.

Deviations:
  - Teachers trained in-run (above), with the student's embedding width (on a text dataset a
    unimodal ResNet18 baseline has 512-d features; a teacher here has the student's width so the MSE
    is defined; BalanceBenchmark's teachers are built from the same model config as the student);
  - the teachers are forwarded in eval mode (BatchNorm running statistics, not updated); in
    BalanceBenchmark the loaded teacher is never put in eval mode, so it runs in train mode (batch
    statistics, its running statistics drift under no_grad);
  - fusion head `concat` (BalanceBenchmark's default `ConcatFusion_N`, = this harness's `concat`
    head: per-modality blocks of one linear layer on the concatenation); `umt.fusion=lsum` for the
    harness's Naïve head;
  - protocol: this harness's (SGD, lr 1e-3, StepLR(70, 0.1), batch 64, 100 epochs) for student and
    teachers. BalanceBenchmark's own protocol (AdamW, 30 epochs, StepLR(10)) is the benchmark's, not
    the method's, so no `preset=original` is offered; the paper's settings could not be read here;
  - three or more modalities: one teacher per modality (the trainer's loop over
    `loaded_model.keys()` is modality-generic), so `synthetic-avt` runs.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, check_modulation_window
from amst_bench.train.models import build_head


@dataclass(frozen=True)
class UMTConfig:
    """scaling            weight of the feature-distillation MSE (BalanceBenchmark: 10)
    modulation_starts  first epoch with the distillation term (inclusive)
    modulation_ends    last epoch with the distillation term (inclusive; BalanceBenchmark: 80)
    teacher_epochs     epochs each unimodal teacher trains (0: the protocol's epochs)
    fusion             the student's fusion head: concat (BalanceBenchmark) or lsum"""

    scaling: float = option(10.0, minimum=0.0)
    modulation_starts: int = option(0, minimum=0)
    modulation_ends: int = option(80, minimum=0)
    teacher_epochs: int = option(0, minimum=0)
    fusion: str = option("concat", choices=("concat", "lsum"))


def feature_distillation(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor],
                         scaling: float) -> torch.Tensor:
    """scaling · Σ_m MSE(teacher_m, student_m): UMT_trainer.py's `loss += scaling * MSE(...)`."""
    return scaling * torch.stack([F.mse_loss(student[m], teacher[m].detach()) for m in teacher]).sum()


@register_method("umt")
class UMT(EncodersAndHead):
    family = "objective"
    extra_work_per_step = (
        "a unimodal teacher per modality trained in-run before epoch 0, then a no-grad teacher forward "
        "every step"
    )
    description = "UMT: joint CE + scaling·MSE to frozen unimodal teachers' features, teachers trained in-run"
    Config = UMTConfig

    def __init__(self, config: UMTConfig, ctx):
        self.head_kind = config.fusion  # read by build_model and subset_logits
        self.teachers_trained = False
        self.teacher_record: dict[str, dict[str, Any]] = {}
        super().__init__(config, ctx)
        check_modulation_window("umt", config.modulation_starts, config.modulation_ends)

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"umt needs two or more modalities; got {', '.join(modalities)}")

    def build_model(self) -> nn.ModuleDict:
        model = super().build_model()
        dim, classes = self.embedding_dim, self.ctx.num_classes
        model["teachers"] = nn.ModuleDict({
            m: nn.ModuleDict({"encoder": self.ctx.make_encoder(m),
                              "head": build_head("lsum", (m,), dim, classes)})
            for m in self.modalities
        })
        return model

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The student's parts only; each teacher gets its own SGD while it trains."""
        return {key: self.sgd(self.model[key].parameters()) for key in ("encoders", "head")}

    # ------------------------------------------------------------------ teachers

    @property
    def teacher_epochs(self) -> int:
        return self.config.teacher_epochs or self.ctx.protocol.epochs

    def on_train_epoch_start(self, epoch: int) -> None:
        if not self.teachers_trained:
            for m in self.modalities:
                self.teacher_record[m] = self.train_teacher(m)
            self.teachers_trained = True

    def train_teacher(self, modality: str) -> dict[str, Any]:
        """The unimodal recipe on `modality`; the teacher ends at its best validation epoch."""
        teacher = self.model["teachers"][modality]
        opt = self.ctx.protocol.optimizer
        sgd = self.sgd(teacher.parameters())
        sched = torch.optim.lr_scheduler.StepLR(sgd, step_size=opt.lr_step, gamma=opt.lr_gamma)
        index = self.modalities.index(modality)
        generator = torch.Generator().manual_seed(torch.initial_seed() * 31 + 1009 * (index + 1))
        started = time.perf_counter()
        best = {"epoch": -1, "val_acc": -1.0}
        best_state = None
        for epoch in range(self.teacher_epochs):
            teacher.train()
            for batch in self.train_batches(generator, augment=True):
                logits = self.teacher_logits(teacher, modality, batch.inputs)
                self.step([sgd], self.cross_entropy(logits, batch.labels))
            sched.step()
            acc = self.teacher_accuracy(teacher, modality)
            if acc > best["val_acc"]:
                best = {"epoch": epoch, "val_acc": acc}
                best_state = copy.deepcopy(teacher.state_dict())
        if best_state is not None:
            teacher.load_state_dict(best_state)
        teacher.zero_grad(set_to_none=True)
        teacher.requires_grad_(False)
        return best | {"seconds": time.perf_counter() - started}

    @staticmethod
    def teacher_logits(teacher: nn.Module, modality: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return teacher["head"]({modality: teacher["encoder"](inputs[modality])})[0]

    @torch.no_grad()
    def teacher_accuracy(self, teacher: nn.Module, modality: str) -> float:
        teacher.eval()
        hits, total = 0, 0
        for batch in self.val_batches():
            logits = self.teacher_logits(teacher, modality, batch.inputs)
            hits += int((logits.argmax(1) == batch.labels).sum())
            total += len(batch)
        return hits / max(total, 1)

    @torch.no_grad()
    def teacher_features(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        teachers = self.model["teachers"]
        teachers.eval()
        return {m: teachers[m]["encoder"](inputs[m]) for m in self.modalities}

    # ------------------------------------------------------------------ training

    def distilling(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def extra_loss(self, batch, epoch, embeddings, logits, per_modality) -> torch.Tensor | None:
        if not self.distilling(epoch) or self.config.scaling == 0:
            return None
        return feature_distillation(embeddings, self.teacher_features(batch.inputs), self.config.scaling)

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "teacher_epochs": self.teacher_epochs,
            "teachers": {m: dict(r) for m, r in self.teacher_record.items()},
        }

    def extra_state(self) -> dict[str, Any]:
        return {"teachers_trained": self.teachers_trained,
                "teacher_record": {m: dict(r) for m, r in self.teacher_record.items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.teachers_trained = bool(state["teachers_trained"])
        self.teacher_record = {m: dict(r) for m, r in state["teacher_record"].items()}
        self.model["teachers"].requires_grad_(not self.teachers_trained)
