"""Greedy: balanced multi-modal learning by conditional learning speed (re-balancing steps), on MMTM.

Paper: N. Wu, S. Jastrzębski, K. Cho, K. J. Geras, "Characterizing and overcoming the greedy nature
of learning in multi-modal deep neural networks", ICML 2022 (arXiv 2202.05306). Code followed
(read, not copied): nyukat/greedy_multimodal_learning `src/balanced_mmtm.py` (`MMTM_mitigate`),
`src/model.py` (`MMTM_MVCNN`), `src/callbacks.py` (`Bias_Mitigation_Strong`,
`ReduceLROnPlateau_PyTorch`), `train.py` (`blend_loss`, `acc`), `configs/training_guided.gin`.
Second reference: GeWu-Lab/BalanceBenchmark `balancemm/trainer/Greedy_trainer.py` (not followed).

Model (as `MMTM_MVCNN`): one conv encoder per modality with an MMTM between them after each of its
last stages (ResNet18: after layer2, layer3, layer4, as the code; the smoke profile's tiny nets:
after each of their two conv stages), one linear head per modality; prediction = the mean of the
two heads' logits (`acc`); loss = Σ_m CE(head_m) (`blend_loss`).
MMTM (`MMTM_mitigate`, ratio 4): s_m = mean of modality m's feature map over space (and frames);
z = ReLU(W_sq [s_a; s_v] + b), dim 2·(C_a + C_v)/4; scale_m = sigmoid(W_m z + b_m); feature map
of m ← feature map · scale_m (per channel). Running averages of each modality's batch-mean scale
are kept (cumulative mean over training forwards).
How the encoders are split: the harness's encoders are not rewritten; `StagedEncoder` calls their
own blocks in order (ResNet18: conv1..layer2, layer3, layer4, then avgpool; tiny: body[0:3],
body[3:6], then body[6:]; the visual encoder's frames folded into the batch and averaged over
time at the end, then `proj`), so MMTM sits between the same modules the encoders' forward runs.

Balancing (`Bias_Mitigation_Strong`, guided), after every backward, before the SGD step:
  - conditional learning speed: per modality m, ratio r = Σ‖∇θ‖² / Σ‖θ‖² over its "main" branch
    (encoder and head) and over its "bypass" (MMTM parameters: its own excitation layer, plus
    the shared squeeze layer, which counts for both); M_main_m and M_bypass_m accumulate r over
    the steps where it is computed (never reset); BDR_m = log10(M_bypass_m / M_main_m);
    d = BDR_0 − BDR_1 (modalities in sorted order);
  - before `starting_epoch` (2): d is computed, no curation;
  - from then on, outside a re-balancing window: d computed; if |d| > ε (0.01) a window of
    `window` (5) re-balancing steps starts, caring for modality 0 if d > 0, modality 1 if d < 0;
    inside a window nothing is computed and the window counts down;
  - in a re-balancing step the caring modality's MMTM scale is its running average (no
    information from the other modality), the other's is computed as usual.

Protocol: default the harness's (SGD lr 1e-3, momentum 0.9, wd 1e-4, StepLR(70, 0.1)).
`preset=original`: the gin config's SGD lr 0.1, momentum 0, weight decay 0, and its
ReduceLROnPlateau on the epoch's training loss (factor 0.3, patience 10, threshold 1e-3 rel,
min_lr 1e-6); its batch size 8, 300 epochs and early stopping are protocol budgets, not changed.

Deviations and choices:
  - The code's running average of the second modality's scale accumulates the FIRST modality's
    scales (`running_avg_weight_skeleton = (vis_out.mean(0) + ...)`, a copy-paste slip); here each
    modality's own (`average_source=own`); `average_source=code` reproduces the slip.
  - The running averages are updated by training forwards only (the code's also by evaluation
    forwards); evaluation never uses curation (the code evaluates in whatever mode training
    left it).
  - Two modalities only (d is a difference of two; the code has two branches); a modality without
    convolutional feature maps (text) cannot pass through MMTM: both raise UnsupportedDataset.
  - `rebalance=random` is the code's `Bias_Mitigation_Random` (training_random.gin): from
    `starting_epoch` on, after every backward one of {no re-balancing, care for modality 1, care
    for modality 0} is drawn uniformly for the next step (here from a generator seeded by the run's
    seed and checkpointed; the code uses Python's `random`); d is not computed.
  - Heads get the harness's `official_init` (Xavier; the code's `fc` keeps PyTorch's default), the
    encoders are the protocol's (the code: torchvision ResNet18 on ModelNet40 views).
  - Balance metrics leave a modality's head out of the mean; its features still saw the other
    modality through MMTM.
  - Recorded per epoch: the share of steps in a re-balancing window per caring modality and the
    last d (`history`); curation state, counters and M sums are checkpointed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, Prediction, StepOutput, fuse_parts
from amst_bench.train.models import (
    ResNet18AudioEncoder,
    ResNet18VisualEncoder,
    TinyAudioEncoder,
    TinyVisualEncoder,
)

PRESETS = ("harness", "original")
AVERAGE_SOURCES = ("own", "code")
REBALANCE = ("guided", "random")
CONV_ENCODERS = (TinyAudioEncoder, TinyVisualEncoder, ResNet18AudioEncoder, ResNet18VisualEncoder)


class StagedEncoder:
    """An existing conv encoder run block by block (no module of its own: its blocks are the
    encoder's), so a fusion module can act between blocks."""

    def __init__(self, encoder: nn.Module):
        self.encoder = encoder
        self.frames = isinstance(encoder, (TinyVisualEncoder, ResNet18VisualEncoder))
        if isinstance(encoder, (TinyAudioEncoder, TinyVisualEncoder)):
            body = encoder.body
            self.blocks = [body[0:3], body[3:6]]
            self.pool = body[6:]
            self.channels = [body[0].out_channels, body[3].out_channels]
        else:
            net = encoder.net
            self.blocks = [nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2),
                           net.layer3, net.layer4]
            self.pool = nn.Sequential(net.avgpool, nn.Flatten())
            self.channels = [128, 256, 512]
        self._time = 1

    def start(self, x: torch.Tensor) -> torch.Tensor:
        if self.frames:
            self._time = x.shape[1]
            return x.flatten(0, 1)
        return x

    def squeeze(self, features: torch.Tensor) -> torch.Tensor:
        """[B, C]: the mean over space (and frames)."""
        pooled = features.flatten(2).mean(-1)
        return pooled.view(-1, self._time, pooled.shape[1]).mean(1) if self.frames else pooled

    def excite(self, features: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if self.frames:
            scale = scale.repeat_interleave(self._time, dim=0)
        return features * scale[:, :, None, None]

    def finish(self, features: torch.Tensor) -> torch.Tensor:
        feats = self.pool(features)
        if self.frames:
            feats = feats.view(-1, self._time, feats.shape[1]).mean(1)
        return self.encoder.proj(feats)


class MMTM(nn.Module):
    """Multimodal transfer module between two feature maps (`MMTM_mitigate`, not SE-only, own
    excitation layers), with running averages of each modality's scale."""

    def __init__(self, channels: dict[str, int], ratio: int = 4):
        super().__init__()
        dim = sum(channels.values())
        squeezed = int(2 * dim / ratio)
        self.modalities = tuple(channels)
        self.fc_squeeze = nn.Linear(dim, squeezed)
        self.fc_out = nn.ModuleDict({m: nn.Linear(squeezed, c) for m, c in channels.items()})
        for m, c in channels.items():
            self.register_buffer(f"average_{m}", torch.zeros(c))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def average(self, modality: str) -> torch.Tensor:
        return getattr(self, f"average_{modality}")

    def forward(self, squeezed: dict[str, torch.Tensor], caring: str | None = None, update: bool = False,
                average_source: str = "own") -> dict[str, torch.Tensor]:
        """Per-channel scales [B, C_m]; the caring modality's replaced by its running average."""
        excitation = F.relu(self.fc_squeeze(torch.cat([squeezed[m] for m in self.modalities], 1)))
        scales = {m: torch.sigmoid(self.fc_out[m](excitation)) for m in self.modalities}
        if update:
            with torch.no_grad():
                n = self.steps.float()
                first = scales[self.modalities[0]].mean(0)
                for m in self.modalities:
                    source = first if average_source == "code" else scales[m].mean(0)
                    self.average(m).copy_((source.float() + self.average(m) * n) / (n + 1))
                self.steps += 1
        if caring is not None:
            batch = scales[caring].shape[0]
            scales[caring] = self.average(caring).to(scales[caring].dtype).expand(batch, -1)
        return scales


def speed_ratio(params: list[nn.Parameter]) -> torch.Tensor:
    """Σ‖∇θ‖² / Σ‖θ‖² over `params` (a parameter without a gradient adds 0 to the numerator)."""
    grads = [p.grad.float().pow(2).sum() for p in params if p.grad is not None]
    gn = torch.stack(grads).sum() if grads else torch.zeros(())
    wn = torch.stack([p.detach().float().pow(2).sum() for p in params]).sum()
    return gn / wn


@dataclass
class Curation:
    """The re-balancing state of `Bias_Mitigation_Strong`."""

    m_main: list[float]
    m_bypass: list[float]
    active: bool = False
    caring: int = 0
    step: int = 0
    d: float | None = None

    def record(self, ratios_main: list[float], ratios_bypass: list[float]) -> float:
        """Accumulate one step's ratios; d = BDR_0 − BDR_1."""
        for i in range(2):
            self.m_main[i] += ratios_main[i]
            self.m_bypass[i] += ratios_bypass[i]
        bdr = [math.log10(self.m_bypass[i] / self.m_main[i]) for i in range(2)]
        self.d = bdr[0] - bdr[1]
        return self.d

    def after_random(self, unlocked: bool, generator: torch.Generator) -> None:
        """One step of `Bias_Mitigation_Random`: 0 none, 1 care for modality 1, 2 for modality 0."""
        if not unlocked:
            self.active, self.caring = False, 0
            return
        mode = int(torch.randint(3, (1,), generator=generator))
        self.active, self.caring = mode != 0, {0: 0, 1: 1, 2: 0}[mode]

    def after_backward(self, unlocked: bool, epsilon: float, window: int, measure) -> None:
        """One step of the callback: `measure()` gives (main ratios, bypass ratios) when needed."""
        if not unlocked:
            self.record(*measure())
            self.active, self.caring = False, 0
        elif not self.active:
            d = self.record(*measure())
            if abs(d) > epsilon:
                self.active, self.step = True, 0
                self.caring = 1 if d < 0 else 0
            else:
                self.active, self.caring = False, 0
        else:
            self.step += 1
            if self.step == window:
                self.active = False


class TrainLossPlateau:
    """ReduceLROnPlateau on the epoch's mean training loss (the code's callback), stepped by the
    trainer like the other schedulers."""

    def __init__(self, optimizer: torch.optim.Optimizer, method: Greedy):
        self.inner = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.3, patience=10, threshold=1e-3, threshold_mode="rel",
            min_lr=1e-6)
        self.method = method

    def step(self) -> None:
        self.inner.step(self.method.epoch_loss())

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)


@dataclass(frozen=True)
class GreedyOptions:
    """preset         'harness' (the protocol's SGD) | 'original' (SGD lr 0.1, no momentum or wd, plateau)
    epsilon           |d| above which a re-balancing window starts (code 0.01)
    window            re-balancing steps per window (code 5)
    starting_epoch    first epoch with re-balancing (code 2)
    average_source    'own' (each modality's running scale) | 'code' (the code's slip: the first's)
    rebalance         'guided' (Bias_Mitigation_Strong) | 'random' (Bias_Mitigation_Random)"""

    preset: str = option("harness", choices=PRESETS)
    epsilon: float = option(0.01, minimum=0.0)
    window: int = option(5, minimum=1)
    starting_epoch: int = option(2, minimum=0)
    average_source: str = option("own", choices=AVERAGE_SOURCES)
    rebalance: str = option("guided", choices=REBALANCE)


@register_method("greedy")
class Greedy(EncodersAndHead):
    family = "architecture"
    extra_work_per_step = (
        "MMTM modules between encoder stages; gradient and weight norms of the whole model after most "
        "backward passes"
    )
    description = "Greedy (ICML 2022): MMTM fusion, re-balancing steps guided by conditional learning speed"
    Config = GreedyOptions
    head_kind = "lsum"  # one linear head per modality; prediction = their mean

    def __init__(self, config: GreedyOptions, ctx):
        self.curation = Curation([0.0, 0.0], [0.0, 0.0])
        self.draws = torch.Generator().manual_seed(torch.initial_seed())  # rebalance=random
        self.history: list[dict[str, Any]] = []
        self._unlocked = False
        self._loss_sum, self._loss_steps = 0.0, 0
        self._counts: dict[str, int] = {}
        super().__init__(config, ctx)
        self.staged = {m: StagedEncoder(self.model["encoders"][m]) for m in self.modalities}
        if config.preset == "original":
            self.schedulers = {k: TrainLossPlateau(o, self) for k, o in self.optimizers.items()}

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) != 2 or "text" in modalities:
            raise UnsupportedDataset(
                f"greedy fuses the convolutional feature maps of exactly two encoders through MMTM "
                f"(audio and visual); dataset {self.ctx.dataset.name!r} has {', '.join(modalities)}")

    def build_model(self) -> nn.ModuleDict:
        model = super().build_model()
        staged = {m: StagedEncoder(model["encoders"][m]) for m in self.modalities}
        if not all(isinstance(model["encoders"][m], CONV_ENCODERS) for m in self.modalities):
            raise UnsupportedDataset("greedy needs the harness's convolutional audio and visual encoders")
        depth = len(staged[self.modalities[0]].channels)
        model["mmtm"] = nn.ModuleList(
            MMTM({m: staged[m].channels[i] for m in self.modalities}) for i in range(depth))
        return model

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.config.preset == "harness":
            return super().configure_optimizers()
        return {key: torch.optim.SGD(part.parameters(), lr=0.1, momentum=0.0, weight_decay=0.0)
                for key, part in self.model.items()}

    # ------------------------------------------------------------------ the fused forward

    def embed(self, inputs: dict[str, torch.Tensor], caring: str | None = None,
              update: bool = False) -> dict[str, torch.Tensor]:
        """Both encoders block by block with MMTM between blocks; their embeddings."""
        x = {m: self.staged[m].start(inputs[m]) for m in self.modalities}
        for i, mmtm in enumerate(self.model["mmtm"]):
            x = {m: self.staged[m].blocks[i](x[m]) for m in self.modalities}
            scales = mmtm({m: self.staged[m].squeeze(x[m]) for m in self.modalities}, caring, update,
                          self.config.average_source)
            x = {m: self.staged[m].excite(x[m], scales[m]) for m in self.modalities}
        return {m: self.staged[m].finish(x[m]) for m in self.modalities}

    # ------------------------------------------------------------------ training

    def on_train_epoch_start(self, epoch: int) -> None:
        self._unlocked = epoch >= self.config.starting_epoch
        self._loss_sum, self._loss_steps = 0.0, 0
        self._counts = dict.fromkeys(self.modalities, 0) | {"steps": 0}

    def speed_ratios(self) -> tuple[list[float], list[float]]:
        """Per modality, Σ‖∇θ‖²/Σ‖θ‖² of its main branch (encoder, head) and of its MMTM bypass."""
        main, bypass = [], []
        for m in self.modalities:
            main.append(speed_ratio([*self.model["encoders"][m].parameters(),
                                     *self.model["head"].layers[m].parameters()]))
            bypass.append(speed_ratio([p for mmtm in self.model["mmtm"] for p in
                                       (*mmtm.fc_out[m].parameters(), *mmtm.fc_squeeze.parameters())]))
        values = torch.stack(main + bypass).tolist()  # one host sync
        return values[:2], values[2:]

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        curation = self.curation
        caring = self.modalities[curation.caring] if curation.active else None
        self._counts["steps"] = self._counts.get("steps", 0) + 1
        if caring is not None:
            self._counts[caring] = self._counts.get(caring, 0) + 1
        embeddings = self.embed(batch.inputs, caring, update=True)
        _, parts = self.model["head"](embeddings)
        loss = torch.stack([self.cross_entropy(parts[m], batch.labels) for m in self.modalities]).sum()
        cfg = self.config
        if cfg.rebalance == "random":
            after = lambda: curation.after_random(self._unlocked, self.draws)  # noqa: E731
        else:
            after = lambda: curation.after_backward(  # noqa: E731
                self._unlocked, cfg.epsilon, cfg.window, self.speed_ratios)
        self.step(list(self.optimizers.values()), loss, after)
        self._loss_sum += float(loss.detach())
        self._loss_steps += 1
        fused = torch.stack([parts[m].detach() for m in self.modalities]).mean(0)
        return StepOutput(loss.detach(), fused, embeddings)

    def epoch_loss(self) -> float:
        return self._loss_sum / max(self._loss_steps, 1)

    def on_train_epoch_end(self, epoch: int) -> None:
        steps = max(self._counts.get("steps", 0), 1)
        share = {m: self._counts.get(m, 0) / steps for m in self.modalities}
        self.history.append({"epoch": epoch, "d": self.curation.d, "rebalancing_share": share})

    # ------------------------------------------------------------------ prediction

    def predict(self, inputs: dict[str, torch.Tensor]) -> Prediction:
        embeddings = self.embed(inputs)
        _, parts = self.model["head"](embeddings)
        return Prediction(torch.stack([parts[m] for m in self.modalities]).mean(0), embeddings, parts)

    def subset_logits(self, prediction: Prediction, modalities: frozenset[str]) -> torch.Tensor:
        return fuse_parts(prediction.modality_logits, modalities, "msum")

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {"history": [dict(h) for h in self.history],
                                                  "order": list(self.modalities)}

    def extra_state(self) -> dict[str, Any]:
        return {"curation": dataclasses.asdict(self.curation), "history": [dict(h) for h in self.history],
                "draws": self.draws.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.curation = Curation(**state["curation"])
        self.draws.set_state(state["draws"])
        self.history = [dict(h) for h in state["history"]]
