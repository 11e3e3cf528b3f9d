"""MSLR: modality-specific learning rates for additive late fusion.

Paper: Y. Yao and R. Mihalcea, "Modality-specific Learning Rates for Effective Multimodal Additive
Late-fusion", Findings of ACL 2022 (no official code). The default follows the AMST repository's
copy, CXianRen/AMST `code/baseline/mslr3_new.py` (`MSLRTrainer`), run by `Jobs/mslr3.sh`
(`--fusion_method lsum --audio_lr 0.001 --visual_lr 0.01 --text_lr 0.001`).

Mechanism (as that code):
  - `lsum` head (one linear layer with bias per modality, logits summed) and one cross-entropy on
    the fused logits; `MSLRTrainer` keeps `BasicTrainer.train_method` (`code/common.py`:563-570),
    so the training step is `EncodersAndHead`'s joint step; only the optimisers differ.
  - Encoders: one SGD with one parameter group per modality (mslr3_new.py:92-104); the fusion
    head: its own SGD at `fusion_lr` = 1e-3 for all of its per-modality blocks (:80-85).
    Momentum and weight decay from the protocol (0.9, 1e-4). The trainer's StepLR(70, 0.1) scales
    every group, as the code's one StepLR per optimiser (:107-111).

What the AMST code actually ran (checked in the code and its released log): the dynamic rule
`adjust_lr` (:126-157) is called only from `after_validate` (:159-165), but
`BasicTrainer.train_validate` calls `self.after_valid()` (common.py:680, a no-op at :529) and
nothing calls `after_validate`. So although `--strategy` defaults to 'dynamic' (:46), no rate ever
changed: `Doc/Logs/MSLR_CREMAD.log` prints `strategy: dynamic` and, over 100 epochs, no
"Update learning rate" line. Table 1's MSLR is the static variant; it is the default here.

`variant='dynamic'` runs the code's rule for real, in `on_validation_end(epoch, evaluation)`:
  - signal: `evaluation.head_modality_accuracy[m]`, the validation accuracy of modality m's own
    logits inside the late fusion (its `lsum` block), which is what the code reads (`val_m_map[m]`
    = accuracy of `fusion.get_out_m(m)`, common.py:471-486 and :378-379), not the linear probes;
  - every epoch the current value joins a buffer of the last `history_length` (5) values
    (`cycle_buffer`, :19-32); the current value is in the mean it is compared with;
  - at epochs e > 0 with e % `update_every` == 0 (None = `history_length`, as the code: epochs
    5, 10, …; the first update at epoch 5 sees a full window, epochs 1-5), each modality's rate
    is multiplied by r = acc_e / mean(buffer). It multiplies the CURRENT rate (already decayed by
    StepLR, which the trainer steps before validation, as the code), not the base rate, so changes
    compound and StepLR keeps scaling the adjusted rate (PyTorch's StepLR multiplies the group's
    current lr). With `update_every` < `history_length` the early means use the values there are.
  - no clipping of r or the rate, as the code.

Deviations and choices the paper (whose text we could not consult here, only its abstract: "three
strategies") or the code leaves open:
  - text rate 8e-5 (AMST paper §4.2, as SPEC states); the code's argparse default is 2e-5 and
    `Jobs/mslr3.sh` passes 1e-3 (its CREMA-D run has no text). Override with `lr`.
  - `head_lr='fusion'` (default, the code) trains the head at `fusion_lr` (None = protocol lr =
    the code's 1e-3) in its own optimiser; `head_lr='modality'` puts modality m's `lsum` block in
    m's group (the paper's view: each unimodal model, classifier included, at its own rate; the
    dynamic rule then scales the block too).
  - a window mean of 0 (all accuracies 0) leaves the rate unchanged (the code would divide by
    zero and set the rate to nan/inf); a modality missing from `head_modality_accuracy` raises.
  - the accuracy history is kept in both variants (the code appends in both), but only
    'dynamic' changes rates.
  - record: `resolved_options()` holds the resolved rates, `lr_history` (per epoch, the rate each
    modality trained with) and `lr_updates` (epoch, ratio, new rate); both and the accuracy
    buffers and the current rates are in `extra_state()`, so a resumed run continues identically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from amst_bench.errors import UnsupportedDataset, UserError
from amst_bench.registry import register_method
from amst_bench.report.metrics import Evaluation
from amst_bench.train.method import EncodersAndHead

PAPER_LR = {"audio": 1e-3, "visual": 1e-2, "text": 8e-5}


@dataclass(frozen=True)
class MSLRConfig:
    """variant          'static' (as Table 1 ran) or 'dynamic' (the code's rule, really applied)
    lr               per-modality rates overriding PAPER_LR (`--set mslr.lr.visual=0.02`)
    head_lr          'fusion': head in its own optimiser at fusion_lr; 'modality': block m in m's group
    fusion_lr        head rate with head_lr='fusion'; None = the protocol's lr
    history_length   window of the dynamic rule's mean
    update_every     epochs between dynamic updates; None = history_length (the code)"""

    variant: str = field(default="static", metadata={"choices": ("static", "dynamic")})
    lr: dict[str, float] | None = None
    head_lr: str = field(default="fusion", metadata={"choices": ("fusion", "modality")})
    fusion_lr: float | None = None
    history_length: int = 5
    update_every: int | None = None


@register_method("mslr")
class MSLR(EncodersAndHead):
    family = "learning rate"
    # only the optimisers' rates differ
    extra_work_per_step = ""
    description = "late fusion (lsum) with one learning rate per modality; static or dynamic (baseline)"
    Config = MSLRConfig
    head_kind = "lsum"

    def __init__(self, config: MSLRConfig, ctx):
        self.rates = self._resolve_rates(config, ctx.modalities)
        if config.history_length < 1 or (config.update_every is not None and config.update_every < 1):
            raise UserError("mslr: history_length and update_every must be >= 1")
        self.acc_history: dict[str, list[float]] = {m: [] for m in ctx.modalities}
        self.lr_history: list[dict[str, float]] = []
        self.lr_updates: list[dict[str, Any]] = []
        super().__init__(config, ctx)

    @staticmethod
    def _resolve_rates(config: MSLRConfig, modalities: tuple[str, ...]) -> dict[str, float]:
        given = dict(config.lr or {})
        unknown = set(given) - set(modalities)
        if unknown:
            raise UserError(f"mslr.lr: no modality {', '.join(sorted(unknown))} in this dataset "
                            f"({', '.join(modalities)})")
        rates = {m: given.get(m, PAPER_LR.get(m)) for m in modalities}
        missing = [m for m, r in rates.items() if r is None]
        if missing:
            raise UnsupportedDataset(f"mslr has no default learning rate for {', '.join(missing)}; "
                                     f"set one with --set mslr.lr.{missing[0]}=<rate>")
        if any(r <= 0 for r in rates.values()):
            raise UserError(f"mslr.lr: rates must be positive, got {rates}")
        return rates

    # ------------------------------------------------------------------ optimisers

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opt = self.ctx.protocol.optimizer
        head = self.model["head"]
        per_head = self.config.head_lr == "modality"
        groups = []
        for m in self.modalities:
            params = list(self.model["encoders"][m].parameters())
            if per_head:
                params += list(head.layers[m].parameters())
            groups.append({"params": params, "lr": self.rates[m], "modality": m})
        optimizers = {"modalities": torch.optim.SGD(
            groups, lr=self.rates[self.modalities[0]], momentum=opt.momentum,
            weight_decay=opt.weight_decay)}
        if not per_head:
            optimizers["head"] = self.sgd(head.parameters(), lr=self.fusion_lr)
        return optimizers

    @property
    def fusion_lr(self) -> float:
        lr = self.config.fusion_lr
        return self.ctx.protocol.optimizer.lr if lr is None else lr

    def current_rates(self) -> dict[str, float]:
        return {g["modality"]: g["lr"] for g in self.optimizers["modalities"].param_groups}

    def _group(self, modality: str) -> dict[str, Any]:
        return next(g for g in self.optimizers["modalities"].param_groups if g["modality"] == modality)

    # ------------------------------------------------------------------ training

    def on_train_epoch_start(self, epoch: int) -> None:
        self.lr_history.append({"epoch": epoch, **self.current_rates()})

    def on_validation_end(self, epoch: int, evaluation: Evaluation) -> None:
        """The dynamic rule (see the module docstring); static only keeps the history."""
        missing = set(self.modalities) - set(evaluation.head_modality_accuracy)
        if missing:
            if self.config.variant == "static":
                return
            raise RuntimeError(f"mslr dynamic: no head accuracy for {', '.join(sorted(missing))}")
        window = self.config.history_length
        for m in self.modalities:
            self.acc_history[m] = (self.acc_history[m] + [evaluation.head_modality_accuracy[m]])[-window:]
        every = self.config.update_every or window
        if self.config.variant != "dynamic" or epoch == 0 or epoch % every != 0:
            return
        ratios = {}
        for m in self.modalities:
            mean = sum(self.acc_history[m]) / len(self.acc_history[m])
            ratios[m] = evaluation.head_modality_accuracy[m] / mean if mean > 0 else 1.0
            self._group(m)["lr"] *= ratios[m]
        self.lr_updates.append({"epoch": epoch, "ratio": ratios, "lr": self.current_rates()})

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "lr": dict(self.rates),
            "fusion_lr": None if self.config.head_lr == "modality" else self.fusion_lr,
            "lr_history": [dict(h) for h in self.lr_history],
            "lr_updates": [dict(u) for u in self.lr_updates],
        }

    def extra_state(self) -> dict[str, Any]:
        return {
            "lr": self.current_rates(),
            "acc_history": {m: list(v) for m, v in self.acc_history.items()},
            "lr_history": [dict(h) for h in self.lr_history],
            "lr_updates": [dict(u) for u in self.lr_updates],
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for m, lr in state["lr"].items():  # also in the optimiser's own state; explicit here
            self._group(m)["lr"] = lr
        self.acc_history = {m: list(v) for m, v in state["acc_history"].items()}
        self.lr_history = [dict(h) for h in state["lr_history"]]
        self.lr_updates = [dict(u) for u in state["lr_updates"]]
