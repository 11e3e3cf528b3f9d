"""AGM: adaptive gradient modulation with Shapley mono-modal responses.

Paper: H. Li, X. Li, P. Hu, Y. Lei, C. Li, Y. Zhou, "Boosting Multi-modal Model Performance with
Adaptive Gradient Modulation", ICCV 2023 (arXiv 2308.07686; its full text was not readable here).
Code followed (read, not copied): Lingy12/AGM_ICCV2023
  `model/CREMAD_net.py` (`GradMod`, `Modality_Audio`/`Modality_Visual`, concat `AVClassifier`),
  `run/CREMAD_main.py` (`train`: scores, ratios, coefficients, clipping), `utils/config.py`
  (argparse defaults; CREMA-D `fusion: concat`), and for three modalities `model/URFunny_net.py`
  (`Modality_Text/Audio/Visual`) and `run/URFunny_main.py` (the M/(M-1) ratio, the clamp at 7).
Second reference: GeWu-Lab/BalanceBenchmark `balancemm/trainer/AGM_trainer.py`, NOT followed where
it departs: it computes the responses under no_grad and scales parameter gradients by name instead
of the gradient through each response, inverts the ratio's sign (exp(+(s_m - mean))), modulates in
every epoch and clips at 5.

Mechanism, per batch (epochs from 0 here; the code counts from 1):
  1. v(N) = the head's fused logits of the training forward (train mode); for every other non-empty
     subset S, v(S) = the same model in EVAL mode (BatchNorm running statistics, not updated) with
     the inputs of the modalities outside S replaced by zeros ("padding"), WITH gradient, as the code
     (each encoder's eval-mode embeddings of the real and of a zero input are computed once per
     batch and shared by the subsets: the same values and gradients, see `subset_values`).
  2. mono-modal response r_m = Σ_{S ⊆ N∖m, S ≠ ∅} |S|!(M−|S|−1)!/M! · (v(S ∪ m) − v(S)) + v({m})/M,
     i.e. the Shapley value of m plus v(∅)/M (two modalities: r_a = (v(av) − v(v) + v(a))/2, the
     code's `Modality_Audio`; three: `URFunny_net.py`'s formulas); Σ_m r_m = v(N).
  3. score s_m = batch mean of −log max(softmax(r_m)[y], 1e-8); ratio_m = exp(M/(M−1)·(mean_k s_k −
     s_m)); the same on the running scores s̄ gives the "optimal" ratio; coefficient
     c_m = exp(α · min(optimal_m − ratio_m, max_gap)); then s̄_m ← running mean of s_m over every
     batch of the run so far (updated in every epoch, inside the window or not).
  4. in the window (modulation_starts ≤ e ≤ modulation_ends) the scale of m becomes c_m;
  5. loss = CE(Σ_m r_m, y) where the gradient reaching r_m is multiplied by its scale (the code's
     full backward hook on `Modality_out`); the padded forwards therefore receive gradient too.
  6. if any element of the head's weight gradient is outside [−1, 1], the gradient norm of the whole
     model is clipped to 1 (`clip`, 0 disables), then SGD steps.
Prediction: the fused logits v(N) in eval mode (the code's m_a + m_v = total_out).

Defaults and presets: only the protocol's optimiser (SGD lr 1e-3, momentum 0.9, wd 1e-4, StepLR(70,
0.1), batch 64, 100 epochs). The code uses the same SGD and StepLR(70, 0.1), its lr is a flag (1e-4
in its README's AV-MNIST command); no `preset` is needed. α = 1.0 and the window 0-19 (the code's
epochs 1-20: argparse `modulation_starts 0`, `modulation_ends 20`, `alpha 1.0`); the README's
AV-MNIST command uses α 2.5. max_gap: 10 for two modalities (CREMAD_main.py), 7 for three or more
(URFunny_main.py). Fusion `concat` (CREMA-D's `ConcatFusion`: one linear layer on [e_a; e_v]).

Deviations and choices:
  - After the window the code keeps applying the LAST coefficients of the window (the hook scales
    are never reset); `after_window=keep_last` (default) does the same, `after_window=reset` uses 1.
  - The code's zero-padding forward v(∅) is computed but unused in training: not computed here.
  - URFunny_main.py counts iterations with the batch size instead of the number of batches
    (a bug); the running score here is the exact running mean over all batches of the run.
  - Three or more modalities: the Shapley formula for any M (the code has it for 2 and 3): 2^M − 1
    head evaluations per batch, but only 3 encoder passes per modality (see `subset_values`).
  - Padding a text modality feeds all-zero token ids and mask (the encoder's pooled output is then
    its projection of zeros); the code's text encoders are pre-extracted features.
  - The code's CREMA-D concat head (one Linear on the concatenation) is the `concat` head here
    (per-modality blocks and one shared bias: the same map).
  - Initialisation is the harness's (AMST's `weight_init`: Kaiming NORMAL for convs); the AGM code's
    `weight_init` uses Kaiming UNIFORM for convs (Xavier-normal linears and BatchNorm as here).
  - One SGD per part (encoders, head) instead of one over the model: the same update; the clipping
    rule reads all of them at once, as the code's `clip_grad_norm_(model.parameters())`.
State outside modules (running scores, batches seen, current scales) is in `extra_state`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from amst_bench.data.tensors import Batch
from amst_bench.errors import UnsupportedDataset
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.train.method import EncodersAndHead, StepOutput

LOG_FLOOR = -math.log(1e-8)  # the code's floor on softmax[y]: −log 1e-8


@dataclass(frozen=True)
class AGMOptions:
    """alpha         strength of the modulation
    modulation_starts / modulation_ends   window of epochs (from 0, both inclusive)
    max_gap       clamp on optimal − current ratio (None: 10 for two modalities, 7 for more)
    clip          clip the model's gradient norm to this when a head weight gradient leaves ±clip (0: off)
    after_window  keep_last (the code: last coefficients stay) or reset (scale 1)
    fusion        the head: concat (the code's CREMA-D ConcatFusion) or lsum"""

    alpha: float = option(1.0, minimum=0.0)
    modulation_starts: int = option(0, minimum=0)
    modulation_ends: int = option(19, minimum=0)
    max_gap: float | None = option(None, minimum=0.0)
    clip: float = option(1.0, minimum=0.0)
    after_window: str = option("keep_last", choices=("keep_last", "reset"))
    fusion: str = option("concat", choices=("concat", "lsum"))


class ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by `scale` (the code's hook)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def proper_subsets(modalities: tuple[str, ...]) -> list[frozenset[str]]:
    """Every non-empty subset except the whole set, smallest first."""
    return [frozenset(c) for k in range(1, len(modalities))
            for c in itertools.combinations(modalities, k)]


def mono_modal_responses(values: dict[frozenset[str], torch.Tensor],
                         modalities: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """r_m = Σ_{S ⊆ N∖m, S ≠ ∅} w(|S|)(v(S ∪ m) − v(S)) + v({m})/M (Shapley value of m + v(∅)/M)."""
    n = len(modalities)
    responses = {}
    for m in modalities:
        others = [k for k in modalities if k != m]
        r = values[frozenset({m})] / n
        for size in range(1, n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for combo in itertools.combinations(others, size):
                s = frozenset(combo)
                r = r + weight * (values[s | {m}] - values[s])
        responses[m] = r
    return responses


def response_scores(responses: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, float]:
    """s_m = batch mean of −log max(softmax(r_m)[y], 1e-8) (one host sync for all modalities)."""
    names = list(responses)
    nll = [(-F.log_softmax(responses[m].detach().float(), 1).gather(1, labels[:, None]))
           .clamp(max=LOG_FLOOR).mean() for m in names]
    return dict(zip(names, torch.stack(nll).tolist(), strict=True))


def agm_coefficients(scores: dict[str, float], running: dict[str, float], alpha: float,
                     max_gap: float) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """ratio_m = exp(M/(M−1)·(mean s − s_m)), optimal_m the same on the running scores,
    c_m = exp(α·min(optimal_m − ratio_m, max_gap)). Returns (ratios, optimal ratios, coefficients)."""
    n = len(scores)
    factor = n / (n - 1)
    mean_now, mean_run = sum(scores.values()) / n, sum(running.values()) / n
    ratio = {m: math.exp(factor * (mean_now - s)) for m, s in scores.items()}
    optimal = {m: math.exp(factor * (mean_run - running[m])) for m in scores}
    coefficients = {m: math.exp(alpha * min(optimal[m] - ratio[m], max_gap)) for m in scores}
    return ratio, optimal, coefficients


@register_method("agm")
class AGM(EncodersAndHead):
    family = "gradient modulation"
    extra_work_per_step = "an eval-mode forward and backward of every encoder for the Shapley subset values"
    description = "AGM: Shapley mono-modal responses, gradients scaled by exp(alpha*(optimal - ratio))"
    Config = AGMOptions

    def __init__(self, config: AGMOptions, ctx):
        self.head_kind = config.fusion  # read by build_model and subset_logits
        super().__init__(config, ctx)
        self.max_gap = config.max_gap if config.max_gap is not None else (
            10.0 if len(self.modalities) == 2 else 7.0)
        self.running = {m: 0.0 for m in self.modalities}
        self.scale = {m: 1.0 for m in self.modalities}
        self.iterations = 0

    def check_supported(self, modalities: tuple[str, ...]) -> None:
        if len(modalities) < 2:
            raise UnsupportedDataset(f"agm needs two or more modalities; got {', '.join(modalities)}")

    def in_window(self, epoch: int) -> bool:
        return self.config.modulation_starts <= epoch <= self.config.modulation_ends

    def subset_values(self, inputs: dict[str, torch.Tensor], full: torch.Tensor
                      ) -> dict[frozenset[str], torch.Tensor]:
        """v(S) for every non-empty S: `full` for all modalities, the others in eval mode with the
        absent modalities' inputs zeroed, with gradient (the code's padded forwards).

        In eval mode an encoder maps each sample on its own, so its embedding of the real inputs is
        the same in every subset and its embedding of an all-zero input is one vector for every
        sample: each is computed once (2 encoder passes per modality, one of them on a single zero
        sample, instead of one per subset) and reused; autograd sums their gradients over the
        subsets exactly as over separate forwards."""
        values = {frozenset(self.modalities): full}
        encoders, batch_size = self.model["encoders"], full.shape[0]
        was_training = self.model.training
        self.model.eval()
        try:
            real = self.encode(encoders, inputs, self.modalities)
            zeros = {m: encoders[m](torch.zeros_like(x[:1])) for m, x in inputs.items() if m in encoders}
            for s in proper_subsets(self.modalities):
                embeddings = {m: real[m] if m in s else zeros[m].expand(batch_size, -1)
                              for m in self.modalities}
                values[s] = self.model["head"](embeddings)[0]
        finally:
            self.model.train(was_training)
        return values

    def update_scale(self, scores: dict[str, float], epoch: int) -> dict[str, float]:
        """Coefficients from this batch's scores and the running scores, then the running update;
        the scale follows the window rule. Returns the coefficients."""
        _, _, coefficients = agm_coefficients(scores, self.running, self.config.alpha, self.max_gap)
        self.iterations += 1
        it = self.iterations
        self.running = {m: self.running[m] * (it - 1) / it + scores[m] / it for m in self.modalities}
        if self.in_window(epoch):
            self.scale = dict(coefficients)
        elif epoch > self.config.modulation_ends and self.config.after_window == "reset":
            self.scale = {m: 1.0 for m in self.modalities}
        return coefficients

    def clip_gradients(self) -> None:
        """The code's rule: clip the whole model's norm when a head weight gradient leaves ±clip."""
        limit = self.config.clip
        if limit <= 0:
            return
        grads = [p.grad for name, p in self.model["head"].named_parameters()
                 if name.endswith("weight") and p.grad is not None]
        if grads and any(bool((g.abs() > limit).any()) for g in grads):
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=limit)

    def training_step(self, batch: Batch, epoch: int) -> StepOutput:
        embeddings = self.encode(self.model["encoders"], batch.inputs, self.modalities)
        full, _ = self.model["head"](embeddings)
        responses = mono_modal_responses(self.subset_values(batch.inputs, full), self.modalities)
        # kept for inspection (not state): this batch's scores and coefficients
        self.last_scores = response_scores(responses, batch.labels)
        self.last_coefficients = self.update_scale(self.last_scores, epoch)
        fused = torch.stack([ScaleGrad.apply(responses[m], self.scale[m]) for m in self.modalities]).sum(0)
        loss = self.cross_entropy(fused, batch.labels)
        self.step(list(self.optimizers.values()), loss, self.clip_gradients)
        return StepOutput(loss.detach(), full.detach(), embeddings)

    # ------------------------------------------------------------------ record and state

    def resolved_options(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config) | {"max_gap": self.max_gap}

    def extra_state(self) -> dict[str, Any]:
        return {"running": dict(self.running), "scale": dict(self.scale), "iterations": self.iterations}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.running = dict(state["running"])
        self.scale = dict(state["scale"])
        self.iterations = int(state["iterations"])
