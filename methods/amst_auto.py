"""AMST-Auto: AMST-Alt with its skip parameters chosen from early convergence rates.

Beyond the paper. AMST (ECML-PKDD 2025) §3.2 says a first estimate of s_m is "in proportion to
its accuracy rate of change relative to the slowest learning modality" in the initial epochs,
and its conclusion names automating this as future work; this method does it. Training is
AMST-Alt's (official code CXianRen/AMST, `code/amst_alt.py`, `alter_train`; here `AmstAlt`):
  1. warm-up: epochs 0 … warmup−1 train every modality (s_m = 1);
  2. after validating epoch warmup−1, rate_m = slope of the least-squares line through
     (epoch, probe accuracy of m on validation) for the warm-up epochs;
  3. s_m = clamp(round(rate_m / rate_slowest), 1, max_skip), rate_slowest = the smallest
     positive rate (that modality gets 1);
  4. from epoch `warmup` on, AMST's rule: m trains in epoch e iff e mod s_m == 0.
Choices beyond the paper:
  - signal: `Evaluation.modality_accuracy` (the linear probes on detached embeddings, the same
    for every method), as a fraction, on the validation split; slope per epoch;
  - a modality whose rate is ≤ 0 (it never improved) gets s = 1: it must keep training; if every
    rate is ≤ 0, every modality gets 1 (plain alternating training). The reference is the slowest
    POSITIVE rate, so if the slow modality is flat over the warm-up, the fast one is its own
    reference and gets 1 too (seen on `synthetic`, smoke profile, warmup 5); a barely positive
    rate sends the others to max_skip. No floor or noise test is applied;
  - round half up (2.5 → 3; ties decided in floating point), then clamp to [1, max_skip]
    (default 10: the paper's largest, text's);
  - phase: epochs keep their absolute numbers (e mod s_m, e counted from 0, as AMST), so after a
    warm-up of 5 a modality with s = 3 trains in epochs 6, 9, 12, … (not 5, 8, …); a readjusted
    schedule applies the same way from the epoch after its estimate;
  - `readjust_every` = k > 0: after validating epochs warmup−1 + k, warmup−1 + 2k, … the rates are
    re-fitted on the last `warmup` epochs and s_m re-chosen by the same rule. Rates measured
    while skipping are per epoch, so a skipped modality looks slower than it would trained
    every epoch (the readjusted skips drift down); no correction is made for it;
  - options `skip` and `skip_enabled` of the other AMST methods cannot be set (s_m are chosen);
    `skipped_forward` as in AMST-Alt.
Record: `method_resolved.skip` = the s_m chosen after the warm-up (1 everywhere if the run ended
inside it); `method_resolved.skip_estimates` = every estimate in order: `from_epoch` (the first
epoch it applies to; the last may lie past the run), `fitted` (first and last epoch of the fit),
`rates` and `skip`. The fitted window and the estimates are in `extra_state()`, so a run resumed
after the warm-up keeps its skips exactly. Not shown in the leaderboards (only in the results).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from amst_bench.errors import UserError
from amst_bench.methods.amst_alt import AmstAlt
from amst_bench.methods.amst_common import SkipOptions, SkipSchedule
from amst_bench.options import option
from amst_bench.registry import register_method
from amst_bench.report.metrics import Evaluation


@dataclass(frozen=True)
class AutoSkipOptions(SkipOptions):
    """warmup          epochs trained without skipping and fitted for the rates (>= 2)
    max_skip        the largest s_m chosen
    readjust_every  re-choose s_m every this many epochs after the warm-up (0: never)
    skip, skip_enabled: not settable (chosen here)."""

    skip: dict[str, int] | None = option(None, overridable=False)
    skip_enabled: bool = option(True, overridable=False)
    warmup: int = option(5, minimum=2)
    max_skip: int = option(10, minimum=1)
    readjust_every: int = option(0, minimum=0)


def slope(epochs: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of values against epochs (fsum: a flat curve gives exactly 0)."""
    if len(epochs) != len(values) or len(epochs) < 2:
        raise ValueError("a slope needs at least two (epoch, value) points")
    mean = math.fsum(epochs) / len(epochs)
    dx = [x - mean for x in epochs]
    return math.fsum(d * y for d, y in zip(dx, values, strict=True)) / math.fsum(d * d for d in dx)


def choose_skips(rates: Mapping[str, float], max_skip: int) -> dict[str, int]:
    """s_m = clamp(round_half_up(rate_m / slowest positive rate), 1, max_skip); 1 for rate ≤ 0."""
    positive = [r for r in rates.values() if r > 0]
    if not positive:
        return {m: 1 for m in rates}
    slowest = min(positive)
    return {
        m: max(1, min(max_skip, math.floor(min(r / slowest, max_skip) + 0.5))) if r > 0 else 1
        for m, r in rates.items()
    }


class AutoSkip:
    """Mixin before an AMST method class: warm-up, estimation, schedule, record and state."""

    Config = AutoSkipOptions

    def __init__(self, config, ctx):
        super().__init__(config, ctx)
        self.window: list[tuple[int, dict[str, float]]] = []  # the last `warmup` validations
        self.estimates: list[dict[str, Any]] = []
        self.schedule = SkipSchedule({m: 1 for m in self.modalities})

    def estimate_due(self, epoch: int) -> bool:
        """True after validating the last warm-up epoch and every `readjust_every` after it."""
        since = epoch - (self.config.warmup - 1)
        every = self.config.readjust_every
        return since == 0 or (since > 0 and every > 0 and since % every == 0)

    def schedule_at(self, epoch: int) -> SkipSchedule:
        """The schedule in force in `epoch`: the latest estimate applying to it, else all 1."""
        skip = next((e["skip"] for e in reversed(self.estimates) if e["from_epoch"] <= epoch), None)
        return SkipSchedule(dict(skip)) if skip else SkipSchedule({m: 1 for m in self.modalities})

    def trained_modalities(self, epoch: int) -> tuple[str, ...]:
        return self.schedule_at(epoch).active(epoch, self.modalities)

    def on_validation_end(self, epoch: int, evaluation: Evaluation) -> None:
        super().on_validation_end(epoch, evaluation)
        missing = set(self.modalities) - set(evaluation.modality_accuracy)
        if missing:
            raise RuntimeError(f"{self.name}: no probe accuracy for {', '.join(sorted(missing))}")
        accuracy = {m: float(evaluation.modality_accuracy[m]) for m in self.modalities}
        self.window = (self.window + [(epoch, accuracy)])[-self.config.warmup:]
        if not self.estimate_due(epoch):
            return
        epochs = [e for e, _ in self.window]
        rates = {m: slope(epochs, [acc[m] for _, acc in self.window]) for m in self.modalities}
        skip = choose_skips(rates, self.config.max_skip)
        self.estimates.append({"from_epoch": epoch + 1, "fitted": [epochs[0], epochs[-1]],
                               "rates": rates, "skip": skip})
        self.schedule = SkipSchedule(dict(skip))

    def resolved_options(self) -> dict[str, Any]:
        chosen = self.estimates[0]["skip"] if self.estimates else {m: 1 for m in self.modalities}
        return dataclasses.asdict(self.config) | {
            "skip": dict(chosen),
            "skip_estimates": [_copy(e) for e in self.estimates],
        }

    def extra_state(self) -> dict[str, Any]:
        return super().extra_state() | {"auto_skip": {
            "window": [[e, dict(acc)] for e, acc in self.window],
            "estimates": [_copy(e) for e in self.estimates],
        }}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        if "auto_skip" not in state:
            raise UserError(f"{self.name}: the checkpoint has no skip-estimation state")
        auto = state["auto_skip"]
        self.window = [(int(e), dict(acc)) for e, acc in auto["window"]]
        self.estimates = [_copy(e) for e in auto["estimates"]]
        last = self.estimates[-1]["skip"] if self.estimates else {m: 1 for m in self.modalities}
        self.schedule = SkipSchedule(dict(last))


def _copy(estimate: Mapping[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else list(v) if isinstance(v, list) else v
            for k, v in estimate.items()}


@register_method("amst-auto")
class AmstAuto(AutoSkip, AmstAlt):
    family = "alternating"
    # AMST-Alt's step; the skip estimate runs after validation
    extra_work_per_step = "one loss, backward and optimiser step per trained modality"
    description = "AMST-Alt with s_m chosen from warm-up convergence rates (beyond the paper)"
