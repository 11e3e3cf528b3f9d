"""Figures from stored results (`amst-bench plot`, and `leaderboard` / `publish` with their tables):
per method variant the validation learning curves per modality (the paper's Fig. 3: mean ± SE band
over seeds, epochs a modality did not train shaded), per dataset the mean prediction entropy per
class and modality at the selected epoch (Fig. 4), and test accuracy against seconds per epoch.

Which figures exist (`plan`) depends on the results alone and needs no matplotlib, so the Markdown
tables link them without drawing anything. Drawing is byte-for-byte deterministic (Agg, DejaVu
Sans, no software or date in the PNG), so regenerating from the same runs changes no file; a
figure whose inputs are unchanged is not redrawn (their digest is kept in the PNG).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amst_bench.atomic import atomic_write_bytes, atomic_write_text
from amst_bench.report.metrics import mean_se
from amst_bench.report.results import RunResult

LINKS_NOTE = "Drawn from the same runs into figures/ by `amst-bench leaderboard` or `amst-bench plot`."
INDEX = "index.json"  # read by the static site: a list of {kind, protocol, dataset, variant, path}
KINDS = ("curves", "entropy", "speed")
SKIP_PROFILES = {"bench"}  # timing profiles (a few epochs, one seed): no accuracy figures, as in the tables
DIGEST_KEY = "amst-bench-inputs"
DPI = 100
STYLE = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib: the same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 9,
    "svg.hashsalt": "amst-bench",
    "path.simplify": False,
}
# Modality colours are fixed by name, so a modality has one colour across every figure.
COLOURS = {"audio": "#1f77b4", "visual": "#d62728", "text": "#2ca02c"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
OVERALL = "#222222"
_MATPLOTLIB = importlib.metadata.version("matplotlib")  # part of each figure's digest, without importing it
MARKERS = ("o", "s", "^", "D")


@dataclass(frozen=True)
class Figure:
    """One planned figure: what it shows (`index_entry`) and the runs it is drawn from."""

    kind: str
    protocol: str  # the leaderboard's protocol label
    dataset: str  # the leaderboard's column: the dataset, "name (split)" where one label has two splits
    variant: str | None  # None for the per-dataset figures (entropy, speed)
    path: str  # relative to the figures folder, "/"-separated
    runs: tuple[RunResult, ...] = field(default=(), compare=False, repr=False)

    def index_entry(self) -> dict[str, Any]:
        return {"kind": self.kind, "protocol": self.protocol, "dataset": self.dataset,
                "variant": self.variant, "path": self.path}


# ---------------------------------------------------------------------------------------------- plan


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.") or "x"


def _latest_per_seed(results: list[RunResult]) -> list[RunResult]:
    """One run per (label, variant, dataset, split, seed): the latest finished, as the tables count."""
    chosen: dict[tuple, RunResult] = {}
    for r in sorted(results, key=lambda r: r.finished):
        chosen[(r.protocol_label, r.variant, r.dataset, r.split, r.seed)] = r
    return list(chosen.values())


def _column(r: RunResult, splits: dict[tuple[str, str], set[str]]) -> str:
    return r.dataset if len(splits[(r.protocol_label, r.dataset)]) <= 1 else f"{r.dataset} ({r.split})"


def _has_curves(r: RunResult) -> bool:
    return bool(r.curves.get("val_acc")) and isinstance(r.curves.get("val_modality_acc"), dict)


def _has_entropy(r: RunResult) -> bool:
    return r.test is not None and len(r.test.class_entropy) >= 2  # a balance figure: two modalities or more


def plan(results: list[RunResult]) -> list[Figure]:
    """Every figure the results support, in a stable order (protocol, dataset, kind, variant)."""
    runs = [r for r in _latest_per_seed(results) if r.profile not in SKIP_PROFILES]
    splits: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in runs:
        splits[(r.protocol_label, r.dataset)].add(r.split)
    groups: dict[tuple[str, str], dict[str, list[RunResult]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        groups[(r.protocol_label, _column(r, splits))][r.variant].append(r)
    figures, used = [], set()

    def add(kind: str, label: str, column: str, variant: str | None, chosen: list[RunResult]) -> None:
        name = kind if variant is None else f"{kind}-{_slug(variant)}"
        path = f"{_slug(label)}/{_slug(column)}/{name}.png"
        if path in used:  # two labels that slug alike: told apart by a hash of the full key
            key = hashlib.sha256(repr((kind, label, column, variant)).encode()).hexdigest()[:8]
            path = path[:-4] + f"-{key}.png"
        used.add(path)
        ordered = tuple(sorted(chosen, key=lambda r: (r.variant, r.seed)))
        figures.append(Figure(kind, label, column, variant, path, ordered))

    for (label, column), by_variant in sorted(groups.items()):
        variants = sorted(by_variant)
        for variant in variants:
            with_curves = [r for r in by_variant[variant] if _has_curves(r)]
            if with_curves:
                add("curves", label, column, variant, with_curves)
        entropy = [r for v in variants for r in by_variant[v] if _has_entropy(r)]
        if entropy:
            add("entropy", label, column, None, entropy)
        timed = [r for v in variants for r in by_variant[v] if r.test is not None]
        if timed:
            add("speed", label, column, None, timed)
    return figures


def index(figures: list[Figure]) -> list[dict[str, Any]]:
    return [f.index_entry() for f in figures]


def markdown_links(figures: list[Figure], label: str, prefix: str = "figures/") -> list[str]:
    """The Markdown lines linking one protocol's figures (relative to the leaderboards folder)."""
    mine = [f for f in figures if f.protocol == label]
    if not mine:
        return []
    lines = []
    for kind, title in (
        ("curves", "Learning curves (validation accuracy per modality, mean ± SE over seeds, epochs a "
                   "modality did not train shaded; as the AMST paper's Fig. 3)"),
        ("entropy", "Mean prediction entropy per class and modality (test, selected epoch; as Fig. 4)"),
        ("speed", "Test accuracy against seconds per epoch"),
    ):
        by_dataset: dict[str, list[Figure]] = defaultdict(list)
        for f in mine:
            if f.kind == kind:
                by_dataset[f.dataset].append(f)
        for dataset, figs in sorted(by_dataset.items()):
            links = ", ".join(f"[{f.variant or dataset}]({prefix}{f.path})" for f in figs)
            lines.append(f"- {title}, {dataset}: {links}")
    return lines


# ---------------------------------------------------------------------------------------------- draw


def _digest(fig: Figure) -> str:
    """What the PNG depends on: the figure's runs, this module and matplotlib's version."""
    payload = json.dumps([fig.index_entry(), [r.to_json() for r in fig.runs]], sort_keys=True, default=str)
    code = Path(__file__).read_bytes()
    return hashlib.sha256(payload.encode() + code + _MATPLOTLIB.encode()).hexdigest()


def _stored_digest(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.text.get(DIGEST_KEY)
    except (OSError, ValueError, SyntaxError):
        return None


def render(figures: list[Figure], out_dir: Path) -> list[Path]:
    """Draw every planned figure into out_dir (only those whose inputs changed), write index.json,
    and remove the PNGs an earlier index listed that this one no longer does. matplotlib is
    imported only when something is to be drawn (it takes about a second)."""
    out_dir = Path(out_dir)
    previous = _previous_paths(out_dir)
    written = []
    for fig in figures:
        path = out_dir / fig.path
        digest = _digest(fig)
        if not (path.is_file() and _stored_digest(path) == digest):
            atomic_write_bytes(path, _draw(fig, digest))
            written.append(path)
    atomic_write_text(out_dir / INDEX, json.dumps(index(figures), indent=2) + "\n")
    current = {f.path for f in figures}
    for stale in sorted(previous - current):
        (out_dir / stale).unlink(missing_ok=True)
    return written


def _draw(fig: Figure, digest: str) -> bytes:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    with matplotlib.rc_context(STYLE):
        canvas_fig = MplFigure(dpi=DPI)
        FigureCanvasAgg(canvas_fig)
        DRAW[fig.kind](canvas_fig, fig)
        buffer = io.BytesIO()
        canvas_fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None, DIGEST_KEY: digest})
    return buffer.getvalue()


def _previous_paths(out_dir: Path) -> set[str]:
    try:
        entries = json.loads((out_dir / INDEX).read_text())
        return {e["path"] for e in entries if isinstance(e, dict) and str(e.get("path", "")).endswith(".png")}
    except (OSError, ValueError, TypeError):
        return set()


def _colour(modality: str, order: list[str]) -> str:
    if modality in COLOURS:
        return COLOURS[modality]
    others = [m for m in order if m not in COLOURS]
    return OTHER_COLOURS[others.index(modality) % len(OTHER_COLOURS)]


def mean_band(series: list[list[float | None]]) -> tuple[list[float], list[float]]:
    """Per index: mean and SE (0 for one value) over the series that have a value (nan where none)."""
    length = max(len(s) for s in series)
    means, ses = [], []
    for i in range(length):
        vals = [s[i] for s in series if i < len(s) and s[i] is not None]
        mean, se = mean_se(vals) if vals else (math.nan, None)
        means.append(100 * mean)
        ses.append(100 * se if se is not None else 0.0)
    return means, ses


def skipped_share(runs: tuple[RunResult, ...], modality: str, epochs: int) -> list[float]:
    """Per epoch, the share of the runs in which `modality`'s encoder did not train (the shading)."""
    share = [0.0] * epochs
    for r in runs:
        for e, active in enumerate((r.curves.get("trained_modalities") or [])[:epochs]):
            share[e] += (modality not in active) / len(runs)
    return share


def _spans(flags: list[float]) -> list[tuple[int, int, float]]:
    """Runs of consecutive epochs with the same non-zero value: (first, last, value)."""
    spans: list[tuple[int, int, float]] = []
    for i, v in enumerate(flags):
        if v and spans and spans[-1][1] == i - 1 and spans[-1][2] == v:
            spans[-1] = (spans[-1][0], i, v)
        elif v:
            spans.append((i, i, v))
    return spans


def _draw_curves(mfig, fig: Figure) -> None:
    from matplotlib.patches import Patch

    mfig.set_size_inches(6.0, 3.6)
    ax = mfig.add_subplot()
    runs = fig.runs
    modalities = sorted({m for r in runs for m in r.curves["val_modality_acc"]})
    epochs = max(len(r.curves["val_acc"]) for r in runs)
    patches, lines = [], []
    for m in modalities:
        colour = _colour(m, modalities)
        skipped = skipped_share(runs, m, epochs)
        for first, last, share in _spans(skipped):
            ax.axvspan(first - 0.5, last + 0.5, color=colour, alpha=0.12 * share, lw=0)
        if any(skipped):
            patches.append(Patch(color=colour, alpha=0.15, label=f"{m} not trained"))
    x = list(range(epochs))
    for name, series, colour in [
        *((m, [r.curves["val_modality_acc"].get(m) or [] for r in runs], _colour(m, modalities))
          for m in modalities),
        ("overall", [r.curves["val_acc"] for r in runs], OVERALL),
    ]:
        mean, se = mean_band(series)
        (line,) = ax.plot(x[: len(mean)], mean, color=colour, lw=1.4, label=name)
        ax.fill_between(x[: len(mean)], [a - b for a, b in zip(mean, se, strict=True)],
                        [a + b for a, b in zip(mean, se, strict=True)], color=colour, alpha=0.2, lw=0)
        lines.append(line)
    ax.set_xlim(-0.5, epochs - 0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.grid(alpha=0.3, lw=0.5)
    seeds = len(runs)
    ax.set_title(f"{fig.variant} on {fig.dataset} [{fig.protocol}], n={seeds} seed{'s' * (seeds != 1)}")
    ax.legend(handles=lines + patches, loc="lower right", fontsize=7, frameon=False)
    mfig.text(0.01, 0.01, "per modality: linear probe on the encoder's embedding; band: ± SE over seeds",
              fontsize=6, color="#555555")
    mfig.subplots_adjust(left=0.09, right=0.98, bottom=0.17, top=0.92)


def _draw_entropy(mfig, fig: Figure) -> None:
    by_variant: dict[str, list[RunResult]] = defaultdict(list)
    for r in fig.runs:
        by_variant[r.variant].append(r)
    variants = sorted(by_variant)
    cols = min(3, len(variants))
    rows = math.ceil(len(variants) / cols)
    mfig.set_size_inches(3.2 * cols, 2.3 * rows + 0.5)
    first = None
    for i, variant in enumerate(variants):
        runs = by_variant[variant]
        ax = mfig.add_subplot(rows, cols, i + 1, sharex=first, sharey=first)
        first = first or ax
        modalities = sorted({m for r in runs for m in r.test.class_entropy})
        classes = max(len(v) for r in runs for v in r.test.class_entropy.values())
        names = runs[0].dataset_info.get("class_names") or [str(c) for c in range(classes)]
        width = 0.8 / len(modalities)
        for j, m in enumerate(modalities):
            means, ses = [], []
            for c in range(classes):
                vals = [r.test.class_entropy[m][c] for r in runs
                        if m in r.test.class_entropy and c < len(r.test.class_entropy[m])
                        and r.test.class_entropy[m][c] is not None]
                mean, se = mean_se(vals) if vals else (math.nan, None)
                means.append(mean)
                ses.append(se or 0.0)
            xs = [c + (j - (len(modalities) - 1) / 2) * width for c in range(classes)]
            ax.bar(xs, means, width, yerr=ses, color=_colour(m, modalities), label=m,
                   error_kw={"lw": 0.6, "capsize": 1.5})
        ax.set_xticks(range(classes), [str(n)[:8] for n in names[:classes]], rotation=45, ha="right",
                      fontsize=6)
        if i < len(variants) - cols:  # class names under the lowest panel of each column only
            ax.tick_params(axis="x", labelbottom=False)
        if i % cols:
            ax.tick_params(axis="y", labelleft=False)
        sources = sorted({r.test.entropy_source for r in runs if r.test.entropy_source})
        ax.set_title(f"{variant} (n={len(runs)}{', ' + '/'.join(sources) + ' logits' if sources else ''})",
                     fontsize=7)
        ax.grid(axis="y", alpha=0.3, lw=0.5)
        if i % cols == 0:
            ax.set_ylabel("mean entropy (nats)")
        if i == 0:
            mfig.legend(*ax.get_legend_handles_labels(), loc="upper right", ncols=len(modalities), fontsize=7,
                        frameon=False)
    mfig.suptitle(f"Prediction entropy per class, test split at the selected epoch: {fig.dataset} "
                  f"[{fig.protocol}] (bars: mean ± SE over seeds)", fontsize=9, x=0.02, ha="left")
    height = 2.3 * rows + 0.5
    mfig.subplots_adjust(left=0.22 / cols, right=0.99, bottom=0.45 / height, top=1 - 0.75 / height,
                         hspace=0.45, wspace=0.25)


def _draw_speed(mfig, fig: Figure) -> None:
    import matplotlib

    by_variant: dict[str, list[RunResult]] = defaultdict(list)
    for r in fig.runs:
        by_variant[r.variant].append(r)
    columns = 1 if len(by_variant) <= 18 else 2  # a long legend (30 methods) in two columns
    mfig.set_size_inches(7.5 + 2.2 * (columns - 1), max(4.2, 0.45 + 0.13 * -(-len(by_variant) // columns)))
    ax = mfig.add_subplot()
    on_cpu = any(r.device.is_cpu for r in fig.runs)
    palette = matplotlib.colormaps["tab20"].colors
    for i, variant in enumerate(sorted(by_variant)):
        runs = by_variant[variant]
        x, xe = mean_se([r.seconds_per_epoch.epoch for r in runs])
        y, ye = mean_se([100 * r.test.accuracy for r in runs])
        ax.errorbar([x], [y], xerr=[xe or 0.0], yerr=[ye or 0.0], fmt=MARKERS[i // 20 % len(MARKERS)],
                    color=palette[i % 20], ms=5, lw=0.8, capsize=2, label=f"{variant} (n={len(runs)})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, frameon=False, ncols=columns)
    ax.set_xlabel("seconds per epoch (whole epoch, mean ± SE over seeds)")
    ax.set_ylabel("test accuracy (%, mean ± SE over seeds)")
    ax.grid(alpha=0.3, lw=0.5)
    note = " — CPU: timings not comparable" if on_cpu else ""
    ax.set_title(f"Accuracy vs training cost: {fig.dataset} [{fig.protocol}]{note}")
    mfig.subplots_adjust(left=0.08 if columns == 1 else 0.065, right=0.68 if columns == 1 else 0.53,
                         bottom=0.12, top=0.92)


DRAW = {"curves": _draw_curves, "entropy": _draw_entropy, "speed": _draw_speed}
