"""MILES: Modality-Informed Learning ratE Scheduler.

Paper: A. Guerra-Manzanares and F. E. Shamout, "MILES: Modality-Informed Learning Rate Scheduler for
Balancing Multimodal Learning", IJCNN 2025, arXiv 2510.17394. No code by the authors was found, and
the paper's text could not be read here beyond its abstract and introduction (stored copy:
/work/shared/papers/miles_ijcnn2025.txt). The rule below is RECONSTRUCTED from the abstract (per-
modality learning rates adjusted from the differences of modality-wise conditional utilisation
rates) and from a third-party reimplementation, VuVoCodes/AsynchronousFunction `scripts/train.py`
(`miles_adjust_learning_rates`, citing the paper's Algorithm 1 and Eqs. 3-5: u_A = (M(ŷ_AB) − M(ŷ_B))
/ M(ŷ_AB), δ = |u_A − u_B|, threshold 0.2, factor 0.5); no code was copied from it.

Mechanism (as reconstructed):
  - model: one encoder per modality, a fused head (`fusion`: lsum default, msum or concat, as
    amst_bench.train.models) and SEPARATE unimodal heads (one linear layer per modality on its
    embedding; not the lsum head's parts, so that every fusion kind has the same unimodal heads);
  - loss = CE(fused) + γ·Σ_m CE(unimodal head m) (γ = `gamma`, 1); with γ = 0 the unimodal heads
    get no gradient and no update (they stay at their initialisation);
  - optimisers (SGD, the protocol's lr, momentum and weight decay): one with a parameter group per
    modality's encoder; one for the fused head and the unimodal heads together;
  - after each epoch, on the validation split (one extra forward pass over it, in eval mode):
    u_m = (A_all − A_¬m) / A_all (amst_bench.report.balance.conditional_utilisation), A_all the
    fused head's accuracy; A_¬m by `absent`: `unimodal` (default) the accuracy of the unimodal
    heads of the other modalities, their logits summed (two modalities: the other one's head),
    or `masked` the fused head without m (its per-modality parts summed; averaged for msum);
  - δ = max_m u_m − min_m u_m; if δ > τ (`tau`, 0.2) the encoder of the modality with the largest
    u (first in dataset order on a tie) trains the next epoch at μ (`mu`, 0.5) × its rate, every
    other group at its rate; otherwise every group returns to its rate. Not cumulative: at most one
    factor μ at a time. A_all = 0 (u undefined) changes nothing.
  - StepLR(70, 0.1) of the protocol applies on top: in epoch e the encoder of m trains at
    lr · 0.1^⌊e/70⌋ · (μ if m was slowed after epoch e−1, else 1); the head group at lr · 0.1^⌊e/70⌋.

Deviations and choices:
  - SGD with the protocol's settings, not the paper's Adam;
  - the third-party code above also leaves every rate unchanged when every u_m < 0; we do not
    (δ > τ alone decides), as this reconstruction states;
  - three or more modalities: δ over all modalities (max − min) and A_¬m from the remaining ones.
  - record: `resolved_options()` holds `history` (per epoch: A_all, A_¬m, u, δ, the slowed modality,
    the rates set for the next epoch) and `lr_history` (the rate each encoder trained with per
    epoch); both and the current factor are in `extra_state()`, so a resumed run is identical.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.report.balance import conditional_utilisation, majority_rate, subset_values
from amst_bench.report.metrics import Evaluation
from amst_bench.train.method import EncodersAndHead
from amst_bench.train.models import build_head, unimodal_heads


@dataclass(frozen=True)
class MILESConfig:
    """tau     threshold on δ = max u − min u
    mu      factor on the dominant encoder's rate while δ > tau
    gamma   weight of the unimodal heads' cross-entropies
    fusion  fused head: lsum, msum or concat
    absent  A_¬m from the other modalities' unimodal heads, or from the fused head without m"""

    tau: float = option(0.2, minimum=0.0)
    mu: float = option(0.5, minimum=0.0)
    gamma: float = option(1.0, minimum=0.0)
    fusion: str = option("lsum", choices=("lsum", "msum", "concat"))
    absent: str = option("unimodal", choices=("unimodal", "masked"))


@register_method("miles")
class MILES(EncodersAndHead):
    family = "learning rate"
    # its extra validation pass runs after training: in the whole epoch's time only
    extra_work_per_step = ""
    description = "per-encoder learning rate slowed by μ for the most-utilised modality when δu > τ (MILES)"
    Config = MILESConfig

    def __init__(self, config: MILESConfig, ctx):
        self.scale: dict[str, float] = {m: 1.0 for m in ctx.modalities}
        self.history: list[dict[str, Any]] = []
        self.lr_history: list[dict[str, Any]] = []
        self.head_kind = config.fusion  # read by code that fuses the head's parts (sum or mean)
        super().__init__(config, ctx)

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"miles needs two or more modalities; got {', '.join(modalities)}")

    def build_model(self) -> nn.ModuleDict:
        dim, classes = self.embedding_dim, self.ctx.num_classes
        unimodal = unimodal_heads(self.modalities, dim, classes)
        return nn.ModuleDict({
            "encoders": self.encoders(),
            "head": build_head(self.config.fusion, self.modalities, dim, classes),
            "unimodal": unimodal,
        })

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opt = self.ctx.protocol.optimizer
        groups = [{"params": list(self.model["encoders"][m].parameters()), "modality": m}
                  for m in self.modalities]
        heads = [*self.model["head"].parameters(), *self.model["unimodal"].parameters()]
        return {
            "encoders": torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum,
                                        weight_decay=opt.weight_decay),
            "heads": self.sgd(heads),
        }

    # ------------------------------------------------------------------ training

    def extra_loss(self, batch, epoch, embeddings, logits, per_modality) -> torch.Tensor | None:
        if self.config.gamma == 0:
            return None  # no graph through the unimodal heads: no gradient, no update
        heads = self.model["unimodal"]
        losses = [self.cross_entropy(heads[m](e), batch.labels) for m, e in embeddings.items()]
        return self.config.gamma * torch.stack(losses).sum()

    def on_train_epoch_start(self, epoch: int) -> None:
        self.lr_history.append({"epoch": epoch, **self.current_rates()})

    def current_rates(self) -> dict[str, float]:
        return {g["modality"]: g["lr"] for g in self.optimizers["encoders"].param_groups}

    # ------------------------------------------------------------------ the rule

    @torch.no_grad()
    def measure(self) -> tuple[float, dict[str, float]]:
        """A_all and A_¬m per modality on the validation split, as option `absent` says."""
        model, was_training = self.model, self.model.training
        model.eval()
        fused, parts, unimodal, labels = [], {}, {}, []
        enabled = self.ctx.protocol.precision == "bf16"
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=enabled):
            for batch in self.val_batches():
                emb = self.encode(model["encoders"], batch.inputs, self.modalities)
                logits, per_modality = model["head"](emb)
                fused.append(logits.float())
                for m in self.modalities:
                    parts.setdefault(m, []).append(per_modality[m].float())
                    unimodal.setdefault(m, []).append(model["unimodal"][m](emb[m]).float())
                labels.append(batch.labels)
        model.train(was_training)
        label_t = torch.cat(labels)
        acc_all = float((torch.cat(fused).argmax(1) == label_t).float().mean().item())
        source = unimodal if self.config.absent == "unimodal" else parts
        combine = "mean" if self.config.absent == "masked" and self.config.fusion == "msum" else "sum"
        values = subset_values({m: torch.cat(v) for m, v in source.items()}, label_t, combine,
                               majority_rate(label_t, self.ctx.num_classes))
        everything = frozenset(self.modalities)
        return acc_all, {m: values[everything - {m}] for m in self.modalities}

    def update(self, epoch: int, acc_all: float, acc_without: dict[str, float]) -> dict[str, Any]:
        """The rule on given accuracies: sets each encoder's rate for the next epoch, records it."""
        everything = frozenset(self.modalities)
        table = {everything: acc_all} | {everything - {m}: acc_without[m] for m in self.modalities}
        u = conditional_utilisation(table, self.modalities)
        delta, slowed = None, None
        if all(v is not None for v in u.values()):
            delta = max(u.values()) - min(u.values())
            if delta > self.config.tau:
                slowed = max(self.modalities, key=lambda m: u[m])  # first of equal maxima
        self.scale = {m: self.config.mu if m == slowed else 1.0 for m in self.modalities}
        self._apply_scale()
        entry = {"epoch": epoch, "acc_all": acc_all, "acc_without": dict(acc_without), "u": u,
                 "delta": delta, "slowed": slowed, "next_lr": self.current_rates()}
        self.history.append(entry)
        return entry

    def _apply_scale(self) -> None:
        """rate = the protocol's scheduled rate (StepLR in closed form) × this modality's factor."""
        sched = self.schedulers["encoders"]
        decay = sched.gamma ** (sched.last_epoch // sched.step_size)
        for g in self.optimizers["encoders"].param_groups:
            g["lr"] = g["initial_lr"] * decay * self.scale[g["modality"]]

    def on_validation_end(self, epoch: int, evaluation: Evaluation) -> None:
        self.update(epoch, *self.measure())

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {
            "history": [dict(h) for h in self.history],
            "lr_history": [dict(h) for h in self.lr_history],
        }

    def extra_state(self) -> dict[str, Any]:
        return {"scale": dict(self.scale), "history": [dict(h) for h in self.history],
                "lr_history": [dict(h) for h in self.lr_history]}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.scale = dict(state["scale"])
        self.history = [dict(h) for h in state["history"]]
        self.lr_history = [dict(h) for h in state["lr_history"]]
        self._apply_scale()
