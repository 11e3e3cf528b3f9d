"""The published leaderboard as a static site: an index (one sortable, filterable table per protocol
and dataset), the timing and ablation pages, and one page per method variant × dataset, built from
the same aggregation as the Markdown leaderboards (report/leaderboard.py), never a second one.

No server and nothing fetched at view time: one hand-written script (sort, filter) and one style
sheet are copied in, every link is relative, so the folder works from the file system and from any
static host. The build is deterministic (sorted iteration, fixed number formats, no timestamps):
rebuilding from unchanged results changes no byte. The paper's numbers (report/reference.py) appear
only in rows and sections labelled "paper", in a table body of their own that sorting never mixes
with the measured rows.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

import pandas as pd

from amst_bench.atomic import atomic_write_bytes
from amst_bench.errors import UserError
from amst_bench.report import leaderboard as lb
from amst_bench.report import reference
from amst_bench.report.publish import Stored
from amst_bench.report.results import RunResult, warn_on_stderr
from amst_bench.report.site_html import (
    DASH,
    Cell,
    Column,
    esc,
    href,
    json_block,
    number_cell,
    page,
    plain_table,
    stat_cell,
    table,
)
from amst_bench.report.site_svg import DASHES, PALETTE, Series, line_chart, per_epoch

MANIFEST = ".amst-site"  # the files of the last build: marks the folder as a site, lists what to prune
ASSETS = ("site.css", "site.js")
FIGURE_KINDS = ("curves", "entropy", "speed")
PAPER_PROTOCOL = "paper (AMST paper, reported)"
OTHER_FAMILY = "other"

Stat = tuple[float, float | None, int | None]


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Figure:
    """One entry of `amst-bench plot`'s figures/index.json, with its file."""

    kind: str
    protocol: str
    dataset: str  # the table column, as the leaderboard names it ("cremad", or "cremad (speaker)")
    variant: str | None
    source: Path  # the file, resolved
    rel: str  # its path under the figures folder, kept in the site's figures/

    @property
    def site_path(self) -> str:
        return f"figures/{self.rel}"


def read_figures(figures_dir: Path | None, warn: Callable[[str], None] = warn_on_stderr) -> list[Figure]:
    """The figures `figures_dir/index.json` lists whose files exist; nothing when there is no index.
    A malformed index or entry is reported in one line and left out: figures never stop a build."""
    if figures_dir is None or not (figures_dir / "index.json").is_file():
        return []
    index = figures_dir / "index.json"
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warn(
            f"amst-bench: warning: {index}: not readable as JSON ({type(exc).__name__}); no figures embedded"
        )
        return []
    if not isinstance(entries, list):
        warn(f"amst-bench: warning: {index}: expected a JSON list of figures; no figures embedded")
        return []
    out = []
    root = figures_dir.resolve()
    for i, entry in enumerate(entries):
        where = f"amst-bench: warning: {index}: entry {i}"
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("kind", "protocol", "dataset", "path")
        ):
            warn(f"{where}: expected kind, protocol, dataset and path strings; left out")
            continue
        variant = entry.get("variant")
        source = (figures_dir / entry["path"]).resolve()
        if entry["kind"] not in FIGURE_KINDS or not (variant is None or isinstance(variant, str)):
            warn(
                f"{where}: kind must be one of {', '.join(FIGURE_KINDS)} "
                "and variant a string or null; left out"
            )
        elif root not in source.parents:
            warn(f"{where}: path {entry['path']!r} is outside {figures_dir}; left out")
        elif not source.is_file():
            warn(f"{where}: {entry['path']} does not exist; left out")
        else:
            rel = source.relative_to(root).as_posix()
            out.append(Figure(entry["kind"], entry["protocol"], entry["dataset"], variant, source, rel))
    return out


# ---------------------------------------------------------------------------------------------- model


def slug(*parts: str) -> str:
    """A file or anchor name for a (label, variant, dataset): readable, and unique by a short hash."""
    text = "--".join(parts)
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


@dataclass
class Group:
    """The runs of one method variant on one dataset column under one protocol label: one detail page."""

    label: str
    variant: str
    method: str
    column: str
    dataset: str
    runs: list[Stored] = field(default_factory=list)

    @property
    def page(self) -> str:
        return f"runs/{slug(self.label, self.variant, self.column)}.html"

    @property
    def results(self) -> list[RunResult]:
        return [s.result for s in self.runs]


@dataclass
class Board:
    """The numbers of one protocol label, all from leaderboard.py's aggregation."""

    label: str
    frame: pd.DataFrame
    rows: list[str]
    columns: list[str]
    timing_only: bool
    on_cpu: bool
    mixed: bool
    accuracy: dict
    macro_f1: dict
    epoch_s: dict
    train_s: dict
    epochs: dict
    modality: dict  # (variant, column, modality) -> Stat
    phi: dict
    utilisation: dict
    imbalance: dict
    modalities: dict[str, list[str]]  # column -> modalities

    def dataset_of(self, column: str) -> str:
        return str(self.frame.loc[self.frame["column"] == column, "dataset"].iloc[0])

    def split_of(self, column: str) -> str:
        return ", ".join(sorted(set(self.frame.loc[self.frame["column"] == column, "split"])))

    def speed_ratio(self, stats: dict, variant: str, column: str) -> float | None:
        """Seconds per epoch over naive's on the same dataset; None where timings are not comparable
        (CPU or mixed devices, as the Markdown tables decide) or naive was not run."""
        if self.on_cpu or self.mixed or (variant, column) not in stats or ("naive", column) not in stats:
            return None
        return stats[(variant, column)][0] / stats[("naive", column)][0]

    @property
    def timing_note(self) -> str | None:
        if self.on_cpu:
            return lb.CPU_NOTE
        if self.mixed:
            return lb.MIXED_NOTE[0].upper() + lb.MIXED_NOTE[1:] + "."
        return None


def _by_modality(frame: pd.DataFrame, field_name: str, scale: float = 1.0) -> dict:
    cells = lb.per_modality_frame(frame, field_name)
    if cells.empty:
        return {}
    cells["row"] = list(zip(cells["variant"], cells["modality"], strict=True))
    return {
        (v, c, m): (mean * scale, None if se is None else se * scale, n)
        for ((v, m), c), (mean, se, n) in lb.seed_stats(cells, "value", row="row").items()
    }


def board(df: pd.DataFrame, label: str) -> Board:
    sub = df[df["label"] == label]
    modalities = {
        col: sorted(
            {m for d in sub.loc[sub["column"] == col, "modality_accuracy"] for m in d}
            | {m for d in sub.loc[sub["column"] == col, "shapley"] for m in d}
        )
        for col in set(sub["column"])
    }
    return Board(
        label=label,
        frame=sub,
        rows=lb.variant_rows(sub),
        columns=lb.dataset_columns(sub["column"]),
        timing_only=lb.timing_only(sub),
        on_cpu=bool(sub["cpu"].any()),
        mixed=sub["device"].nunique() > 1,
        accuracy=lb.seed_stats(sub, "accuracy"),
        macro_f1=lb.seed_stats(sub, "macro_f1"),
        epoch_s=lb.seed_stats(sub, "epoch_s"),
        train_s=lb.seed_stats(sub, "train_s"),
        epochs=lb.timed_epochs(sub),
        modality=_by_modality(sub, "modality_accuracy"),
        phi=_by_modality(sub, "shapley"),
        utilisation=_by_modality(sub, "utilisation"),
        imbalance=lb.seed_stats(sub, "shapley_imbalance"),
        modalities=modalities,
    )


def groups(df: pd.DataFrame, stored: list[Stored]) -> dict[tuple[str, str, str], Group]:
    """(label, variant, column) -> its runs: exactly the runs the tables count (the frame's rows)."""
    by_id: dict[str, Stored] = {}
    for s in sorted(stored, key=lambda s: (s.result.finished, s.path.name)):
        by_id[s.result.run_id] = s  # of two files of one run, the later finished (as the tables)
    out: dict[tuple[str, str, str], Group] = {}
    for row in df.sort_values(["label", "variant", "column", "seed"]).itertuples(index=False):
        key = (row.label, row.variant, row.column)
        group = out.setdefault(key, Group(row.label, row.variant, row.method, row.column, row.dataset))
        group.runs.append(by_id[row.run_id])
    return out


# ---------------------------------------------------------------------------------------------- pages


def _label_id(label: str) -> str:
    return "p-" + slug(label)


def _board_id(label: str, column: str) -> str:
    return "b-" + slug(label, column)


def _method_link(group: Group, text: str, root: str = "") -> Cell:
    """The method's name, linking to its detail page (text columns sort by their visible text)."""
    return Cell(f'<a href="{href(root + group.page)}">{esc(text)}</a>', cls="method", raw=True)


def _ratio_cell(ratio: float | None, not_comparable: str | None) -> Cell:
    if ratio is None:
        return Cell(DASH, title=not_comparable)
    return number_cell(ratio, 2, "×", title="seconds per epoch / naive's on the same dataset")


def _figures_html(figs: list[Figure], root: str) -> str:
    if not figs:
        return ""
    items = "".join(
        f'<figure><a href="{href(root + f.site_path)}"><img src="{href(root + f.site_path)}" '
        f'alt="{esc(f.kind)} figure: {esc(f.variant or "all methods")} on {esc(f.dataset)} '
        f'({esc(f.protocol)})" loading="lazy"></a>'
        f"<figcaption>{esc(f.kind)}: {esc(f.variant or 'all methods')}, {esc(f.dataset)}, "
        f"{esc(f.protocol)}</figcaption></figure>"
        for f in figs
    )
    return f'<div class="figures">{items}</div>'


INDEX_INTRO = (
    "Test metrics at the epoch of best validation accuracy, mean ± standard error over seeds (sample std / "
    "√n, n = seeds), per protocol label: runs are compared only within one protocol. Click a column "
    'header to sort, a method to see its runs. Rows marked <span class="badge">paper</span> are the AMST '
    "paper's reported numbers, typed in, never measured here; sorting never mixes them with measured rows."
)


def _index_columns(b: Board, column: str) -> list[Column]:
    mods = b.modalities.get(column, [])
    cols = [Column("method", False, key="method"), Column("family", False, key="family")]
    if not b.timing_only:
        cols += [
            Column("accuracy %", tip="test accuracy, mean ± SE (n seeds)", key="accuracy"),
            Column("macro-F1 %", tip="test macro-F1, mean ± SE (n seeds)", key="macro_f1"),
        ]
        cols += [Column(f"{m} acc %", tip=f"{m} linear-probe test accuracy", key=f"acc_{m}") for m in mods]
        cols += [Column("Shapley imb.", tip="(max φ − min φ) / Σ|φ|, mean over seeds", key="imbalance")]
        cols += [
            Column(f"φ {m}", tip=f"Shapley value of {m} (test, own fusion)", key=f"phi_{m}") for m in mods
        ]
        cols += [Column(f"u {m}", tip=f"conditional utilisation of {m}", key=f"u_{m}") for m in mods]
    cols += [
        Column("s/epoch", tip="seconds per whole epoch (training + validation), mean ± SE", key="epoch_s"),
        Column("× naive", tip="s/epoch ÷ naive's s/epoch on this dataset", key="ratio"),
    ]
    return cols


def _plain_stat(stat: Stat | None, digits: int = 2) -> Cell:
    return number_cell(None if stat is None else stat[0], digits)


def _index_row(b: Board, variant: str, column: str, group: Group, family: str) -> list[Cell]:
    cells = [_method_link(group, variant), Cell(family)]
    key = (variant, column)
    if not b.timing_only:
        cells += [stat_cell(b.accuracy.get(key)), stat_cell(b.macro_f1.get(key))]
        mods = b.modalities.get(column, [])
        cells += [stat_cell(b.modality.get((variant, column, m))) for m in mods]
        cells += [_plain_stat(b.imbalance.get(key))]
        cells += [_plain_stat(b.phi.get((variant, column, m))) for m in mods]
        cells += [_plain_stat(b.utilisation.get((variant, column, m))) for m in mods]
    cells += [
        stat_cell(b.epoch_s.get(key), digits=2),
        _ratio_cell(b.speed_ratio(b.epoch_s, variant, column), b.timing_note),
    ]
    return cells


def _paper_rows(
    dataset: str, n_cells: int, with_time: bool, family_of: Callable[[str], str]
) -> list[tuple[dict[str, str], list[Cell]]]:
    """The paper's Table 1 (and Table 3 when asked) for one dataset, as labelled reference rows."""
    rows = []
    for method, by_dataset in reference.TABLE1_ACCURACY.items():
        if dataset not in by_dataset:
            continue
        mean, se = by_dataset[dataset]
        cells = [
            Cell(f'<span class="badge">paper</span> {esc(method)}', cls="method", raw=True),
            Cell(family_of(method)),
            stat_cell((mean, se, None)),
        ]
        seconds = reference.TABLE3_SECONDS_A100.get(method, {}).get(dataset)
        naive = reference.TABLE3_SECONDS_A100["naive"].get(dataset)
        tail = (
            [number_cell(seconds, 1), number_cell(seconds / naive if seconds and naive else None, 2, "×")]
            if with_time
            else [Cell(DASH), Cell(DASH)]
        )
        rows.append(
            ({"data_family": family_of(method)}, cells + [Cell(DASH)] * (n_cells - len(cells) - 2) + tail)
        )
    return rows


def index_page(boards: list[Board], grp: dict, family_of: Callable[[str], str], figs: list[Figure]) -> str:
    datasets = sorted(
        {b.dataset_of(c) for b in boards for c in b.columns} | set(reference.DATASETS), key=lb._dataset_key
    )
    families = sorted(
        {family_of(g.method) for g in grp.values()} | {family_of(m) for m in reference.TABLE1_ACCURACY}
    )
    protocols = [b.label for b in boards] + [PAPER_PROTOCOL]

    def select(name: str, options: list[str], what: str) -> str:
        opts = "".join(f'<option value="{esc(o)}">{esc(o)}</option>' for o in options)
        return (
            f'<label>{esc(what)} <select name="{name}" id="filter-{name}"><option value="">all</option>'
            f"{opts}</select></label>"
        )

    parts = [
        "<h1>Modality-imbalance leaderboard</h1>",
        f"<p>{INDEX_INTRO}</p>",
        '<form class="filters" role="search" aria-label="filter the tables">'
        + select("dataset", datasets, "Dataset")
        + select("family", families, "Method family")
        + select("protocol", protocols, "Protocol")
        + '<output id="shown" aria-live="polite"></output></form>',
    ]
    if not boards:
        parts.append(f'<p class="note">{esc(lb.NO_RESULTS)}</p>')
    for b in boards:
        parts.append(
            f'<section class="protocol" id="{_label_id(b.label)}" data-protocol="{esc(b.label)}">'
            f"<h2>Protocol: {esc(b.label)}</h2>"
        )
        if b.timing_only:
            parts.append(
                f'<p class="note">{esc(lb.TIMING_ONLY_NOTE.replace("timing.md", "the Timing page"))}</p>'
            )
        if b.timing_note:
            parts.append(f'<p class="note cpu">{esc(b.timing_note)}</p>')
        for column in b.columns:
            dataset = b.dataset_of(column)
            cols = _index_columns(b, column)
            rows = []
            for variant in b.rows:
                group = grp.get((b.label, variant, column))
                if group is None:
                    continue
                family = family_of(group.method)
                rows.append(
                    (
                        {"data_family": family, "data_variant": variant},
                        _index_row(b, variant, column, group, family),
                    )
                )
            paper = [] if b.timing_only else _paper_rows(dataset, len(cols), False, family_of)
            here = [
                f
                for f in figs
                if f.variant is None and f.kind != "speed" and f.protocol == b.label and f.dataset == column
            ]
            parts.append(
                f'<section class="board-section" id="{_board_id(b.label, column)}" '
                f'data-dataset="{esc(dataset)}" '
                f'data-protocol="{esc(b.label)}"><h3>{esc(column)} <small>· {esc(b.label)} · split '
                f"{esc(b.split_of(column))}</small></h3>"
                + table(cols, rows, paper, data_dataset=dataset, data_protocol=b.label)
                + _figures_html(here, "")
                + "</section>"
            )
        parts.append("</section>")
    parts.append(_paper_index_section(family_of))
    return page("amst-bench leaderboard", "\n".join(parts), current="index.html", script=True)


def _paper_index_section(family_of: Callable[[str], str]) -> str:
    out = [
        f'<section class="protocol paper-section" id="paper" data-protocol="{esc(PAPER_PROTOCOL)}">',
        "<h2>Paper reference <small>(AMST paper, Tables 1 and 3; reported numbers, "
        "not measured here)</small></h2>",
        f'<p class="note">{esc(lb._paper_lead())} '
        "Seconds per epoch on one A100, averaged over 100 epochs.</p>",
    ]
    cols = [
        Column("method", False, key="method"),
        Column("family", False, key="family"),
        Column("accuracy %", key="accuracy"),
        Column("s/epoch (A100)", key="epoch_s"),
        Column("× naive", key="ratio"),
    ]
    for dataset in reference.DATASETS:
        rows = [(a, [*r[:3], *r[-2:]]) for a, r in _paper_rows(dataset, 5, True, family_of)]
        out.append(
            f'<section class="board-section" id="paper-{dataset}" data-dataset="{dataset}" '
            f'data-protocol="{esc(PAPER_PROTOCOL)}"><h3>{dataset} <small>· paper</small></h3>'
            + table(cols, [], rows, data_dataset=dataset, data_protocol=PAPER_PROTOCOL)
            + "</section>"
        )
    out.append("</section>")
    return "\n".join(out)


def timing_page(boards: list[Board], grp: dict, family_of: Callable[[str], str], figs: list[Figure]) -> str:
    parts = [
        "<h1>Timing</h1>",
        "<p>Seconds per epoch, mean ± standard error over seeds (n), each run's time averaged over the "
        "epochs shown: the whole epoch (training + validation, + test when it ran, as the paper's Table 3) "
        "and training only. × naive = seconds ÷ naive's on the same dataset, printed only for runs on one "
        "accelerator (CPU sections are not comparable).</p>",
    ]
    cols = [
        Column("method", False, key="method"),
        Column("family", False, key="family"),
        Column("whole epoch s", key="epoch_s"),
        Column("× naive", key="ratio"),
        Column("training s", key="train_s"),
        Column("× naive (training)", key="train_ratio"),
        Column("timed epochs", False, key="epochs"),
    ]
    for b in sorted(boards, key=lambda b: b.on_cpu):  # accelerator timings first: they compare
        devices = b.frame["device"].value_counts().sort_index()
        device_line = "Devices: " + ", ".join(f"{d} ({lb._runs(k)})" for d, k in devices.items())
        parts.append(
            f'<section class="protocol" data-protocol="{esc(b.label)}" id="{_label_id(b.label)}">'
            f"<h2>Protocol: {esc(b.label)}{' — ' + lb.CPU_NOT_COMPARABLE if b.on_cpu else ''}</h2>"
            f"<p>{esc(device_line)}</p>"
        )
        if b.timing_note:
            parts.append(f'<p class="note cpu">{esc(b.timing_note)}</p>')
        for column in b.columns:
            rows = []
            for variant in b.rows:
                group = grp.get((b.label, variant, column))
                if group is None:
                    continue
                key = (variant, column)
                rows.append(
                    (
                        {"data_family": family_of(group.method), "data_variant": variant},
                        [
                            _method_link(group, variant),
                            Cell(family_of(group.method)),
                            stat_cell(b.epoch_s.get(key), 2),
                            _ratio_cell(b.speed_ratio(b.epoch_s, *key), b.timing_note),
                            stat_cell(b.train_s.get(key), 2),
                            _ratio_cell(b.speed_ratio(b.train_s, *key), b.timing_note),
                            Cell(b.epochs.get(key, DASH)),
                        ],
                    )
                )
            dataset = b.dataset_of(column)
            here = [
                f
                for f in figs
                if f.kind == "speed" and f.variant is None and f.protocol == b.label and f.dataset == column
            ]
            parts.append(
                f'<section class="board-section" id="{_board_id(b.label, column)}" '
                f'data-dataset="{esc(dataset)}" data-protocol="{esc(b.label)}"><h3>{esc(column)}</h3>'
                + table(cols, rows, data_dataset=dataset, data_protocol=b.label)
                + _figures_html(here, "")
                + "</section>"
            )
        parts.append("</section>")
    paper = reference.TABLE3_SECONDS_A100
    rows = [
        (
            {"data_family": family_of(m)},
            [
                Cell(f'<span class="badge">paper</span> {esc(m)}', cls="method", raw=True),
                *[number_cell(by.get(d), 1) for d in reference.DATASETS],
            ],
        )
        for m, by in paper.items()
    ]
    parts.append(
        '<section class="protocol paper-section" id="paper"><h2>Paper reference <small>(AMST paper, '
        "Table 3, one A100, seconds per epoch over 100 epochs; reported, not measured here)</small></h2>"
        + table([Column("method", False), *[Column(d) for d in reference.DATASETS]], [], rows)
        + "</section>"
    )
    return page("Timing · amst-bench", "\n".join(parts), current="timing.html", script=True)


def ablation_page(boards: list[Board], grp: dict) -> str:
    exps = reference.ABLATION_EXPERIMENTS
    by_variant = {e.variant: n for n, e in exps.items()}
    parts = [
        "<h1>Ablation (AMST components)</h1>",
        "<p>Test accuracy (%), mean ± SE over seeds (n), of AMST with and without its alternating module, "
        "joint module and skip training: experiments "
        + ", ".join(f"{n} = <code>{esc(e.variant)}</code>" for n, e in exps.items())
        + ". Click a cell for the runs.</p>",
    ]
    ticks = [Column("Exp", key="exp"), Column("Alt.", False), Column("Joint", False), Column("Skip", False)]

    def lead(n: int) -> list[Cell]:
        e = exps[n]
        return [Cell(str(n), f"{n:.6f}")] + [Cell(lb.TICK if on else DASH) for on in (e.alt, e.joint, e.skip)]

    shown = 0
    for b in boards:
        if b.timing_only:
            continue
        sub = b.frame[b.frame["variant"].isin(by_variant)]
        if sub.empty:
            continue
        shown += 1
        cols = lb.dataset_columns(sub["column"])
        rows = []
        for n, e in exps.items():
            cells = lead(n)
            for column in cols:
                group = grp.get((b.label, e.variant, column))
                cell = stat_cell(b.accuracy.get((e.variant, column)))
                if group is not None and cell.text != DASH:
                    cell = Cell(f'<a href="{href(group.page)}">{cell.text}</a>', cell.sort, raw=True)
                cells.append(cell)
            rows.append(({"data_variant": e.variant}, cells))
        parts.append(
            f'<section class="protocol" id="{_label_id(b.label)}"><h2>Protocol: {esc(b.label)}</h2>'
            + table(ticks + [Column(c, key=c) for c in cols], rows)
            + "</section>"
        )
    if not shown:
        parts.append(f'<p class="note">{esc(lb.NO_ABLATION)}</p>')
    paper = reference.TABLE2_ABLATION
    rows = [
        (
            {},
            [
                Cell(f'<span class="badge">paper</span> {n}', f"{n:.6f}", raw=True),
                *lead(n)[1:],
                *[
                    stat_cell((*paper[n][d], None)) if d in paper[n] else Cell(DASH)
                    for d in reference.DATASETS
                ],
            ],
        )
        for n in exps
    ]
    parts.append(
        '<section class="protocol paper-section" id="paper"><h2>Paper reference <small>(AMST paper, '
        "Table 2; reported, not measured here)</small></h2>"
        + table(ticks + [Column(d) for d in reference.DATASETS], [], rows)
        + "</section>"
    )
    return page("Ablation · amst-bench", "\n".join(parts), current="ablation.html", script=True)


# ---------------------------------------------------------------------------------------------- detail


def _distinct(values: list) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1


def _record(title: str, runs: list[RunResult], get: Callable[[RunResult], object]) -> str:
    """One record shown once when every seed has the same, else per seed."""
    values = [get(r) for r in runs]
    if not _distinct(values):
        return f"<h3>{esc(title)}</h3>{json_block(values[0])}"
    return f"<h3>{esc(title)} <small>(differs between seeds)</small></h3>" + "".join(
        f"<h4>seed {r.seed}</h4>{json_block(v)}" for r, v in zip(runs, values, strict=True)
    )


def _seed_table(group: Group, root: str) -> str:
    mods = sorted({m for r in group.results if r.test for m in r.test.modality_accuracy})
    headers = [
        "seed",
        "result JSON",
        "best epoch",
        "val acc %",
        "test acc %",
        "macro-F1 %",
        *[f"{m} acc %" for m in mods],
        "Shapley imb.",
        "s/epoch",
        "training s/epoch",
        "timed epochs",
        "finished",
    ]

    def pct(v: float | None) -> str:
        return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    rows = []
    for s in group.runs:
        r, t = s.result, s.result.test
        rows.append(
            [
                str(r.seed),
                f'<a href="{href(root + "results/" + s.path.name)}">{esc(s.path.name)}</a>',
                str(r.best_epoch),
                pct(r.best_val_acc),
                pct(t.accuracy if t else None),
                pct(t.macro_f1 if t else None),
                *[pct(t.modality_accuracy.get(m) if t else None) for m in mods],
                DASH if not t or t.shapley_imbalance is None else f"{t.shapley_imbalance:.2f}",
                f"{r.seconds_per_epoch.epoch:.2f}",
                f"{r.seconds_per_epoch.train:.2f}",
                str(r.seconds_per_epoch.epochs),
                esc(r.finished),
            ]
        )
    return plain_table(headers, rows, cls="plain seeds")


def _curves(group: Group) -> str:
    runs = group.results
    charts = []
    for key, title, y_label, scale in (
        ("val_acc", "Validation accuracy", "%", 100.0),
        ("train_loss", "Training loss", "loss", 1.0),
    ):
        series = [
            Series(
                f"seed {r.seed}",
                per_epoch(r.curves.get(key, []), r.curves.get("epoch"), scale),
                PALETTE[i % len(PALETTE)],
                marker=float(r.best_epoch) if key == "val_acc" else None,
            )
            for i, r in enumerate(runs)
            if isinstance(r.curves.get(key), list)
        ]
        charts.append(
            line_chart(title + (" (dot: selected epoch)" if key == "val_acc" else ""), series, y_label)
        )
    mods = sorted({m for r in runs for m in (r.curves.get("val_modality_acc") or {})})
    series = [
        Series(
            f"{m}, seed {r.seed}",
            per_epoch(r.curves["val_modality_acc"][m], r.curves.get("epoch"), 100.0),
            PALETTE[mi % len(PALETTE)],
            DASHES[ri % len(DASHES)],
        )
        for mi, m in enumerate(mods)
        for ri, r in enumerate(runs)
        if isinstance((r.curves.get("val_modality_acc") or {}).get(m), list)
    ]
    charts.append(line_chart("Per-modality validation accuracy (linear probes)", series, "%"))
    return '<div class="charts">' + "".join(charts) + "</div>"


def detail_page(group: Group, b: Board, family: str, figs: list[Figure]) -> str:
    root = "../"
    runs = group.results
    key = (group.variant, group.column)
    summary = [
        ("accuracy %", stat_cell(b.accuracy.get(key)).text if key in b.accuracy else DASH),
        ("macro-F1 %", stat_cell(b.macro_f1.get(key)).text if key in b.macro_f1 else DASH),
        ("s/epoch (whole)", stat_cell(b.epoch_s.get(key), 2).text if key in b.epoch_s else DASH),
        ("s/epoch (training)", stat_cell(b.train_s.get(key), 2).text if key in b.train_s else DASH),
    ]
    if b.timing_only:
        summary = summary[2:]
    facts = [
        ("method", f"<code>{esc(group.method)}</code> ({esc(family)})"),
        ("dataset", esc(group.column)),
        ("split", esc(", ".join(sorted({r.split for r in runs})))),
        ("protocol label", esc(group.label)),
        ("profile", esc(", ".join(sorted({r.profile for r in runs})))),
        ("seeds", esc(", ".join(str(r.seed) for r in runs))),
        ("device", esc(", ".join(sorted({r.device.label for r in runs})))),
        ("amst-bench", esc(", ".join(sorted({str(r.versions.get("amst_bench", "?")) for r in runs})))),
    ]
    board_link = f"{root}index.html#{_board_id(group.label, group.column)}"
    here = [
        f
        for f in figs
        if f.variant == group.variant and f.protocol == group.label and f.dataset == group.column
    ]
    body = [
        f'<p class="crumbs"><a href="{href(board_link)}">← {esc(group.column)} · {esc(group.label)}</a></p>',
        f"<h1>{esc(group.variant)} <small>on {esc(group.column)} · {esc(group.label)}</small></h1>",
        '<dl class="summary">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in summary) + "</dl>",
        '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>",
        "<h2>Per seed</h2>",
        _seed_table(group, root),
        "<h2>Per-epoch curves</h2>",
        _curves(group),
        _figures_html(here, root),
        "<h2>Protocol and options</h2>",
        _record("Protocol (resolved)", runs, lambda r: r.protocol),
        _record("Overrides (--set)", runs, lambda r: r.overrides),
        _record("Method options", runs, lambda r: r.method_config),
        _record("Method options, resolved", runs, lambda r: r.method_resolved),
        _record("Dataset options", runs, lambda r: r.dataset_options),
        _record("Dataset", runs, lambda r: r.dataset_info),
        _record("Versions", runs, lambda r: r.versions),
        _record("Device", runs, lambda r: r.device.to_json()),
        _record("Determinism", runs, lambda r: r.determinism),
    ]
    title = f"{group.variant} on {group.column} ({group.label}) · amst-bench"
    return page(title, "\n".join(body), root=root)


# ---------------------------------------------------------------------------------------------- build


def render_site(
    stored: list[Stored],
    family_of: Callable[[str], str] | None = None,
    figures_dir: Path | None = None,
    warn: Callable[[str], None] = warn_on_stderr,
) -> dict[str, bytes]:
    """Site path -> bytes of every file: the pages, the assets, the result JSONs and the figures."""
    family = _family(family_of)
    df = lb.runs_frame([s.result for s in stored])
    # Accuracy protocols first, timing-only ones (bench) after: the index leads with what is compared.
    boards = sorted((board(df, label) for label in lb.protocol_labels(df)), key=lambda b: b.timing_only)
    by_label = {b.label: b for b in boards}
    grp = groups(df, stored)
    figs = read_figures(figures_dir, warn)
    files: dict[str, bytes] = {
        "index.html": index_page(boards, grp, family, figs).encode(),
        "timing.html": timing_page(boards, grp, family, figs).encode(),
        "ablation.html": ablation_page(boards, grp).encode(),
    }
    for g in grp.values():
        files[g.page] = detail_page(g, by_label[g.label], family(g.method), figs).encode()
        for s in g.runs:
            files[f"results/{s.path.name}"] = s.data
    for name in ASSETS:
        files[f"assets/{name}"] = (
            resources.files("amst_bench.report").joinpath("site_assets", name).read_bytes()
        )
    for f in figs:
        files[f.site_path] = f.source.read_bytes()
    return dict(sorted(files.items()))


def _family(family_of: Callable[[str], str] | None) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def family(method: str) -> str:
        if method not in cache:
            try:
                cache[method] = (family_of(method) if family_of else "") or OTHER_FAMILY
            except Exception:  # a method not installed here (an outside plugin's results)
                cache[method] = OTHER_FAMILY
        return cache[method]

    return family


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_site(files: dict[str, bytes], out_dir: Path) -> list[str]:
    """Write the files atomically into out_dir, leave unchanged ones untouched, and remove the files
    the previous build wrote that this one does not. Refuses a non-empty folder that is not a site,
    so nothing of the user's is ever overwritten or removed. Returns the paths written."""
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--site {out_dir}: not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not manifest.is_file():
        raise UserError(
            f"--site {out_dir}: exists, is not empty and is not an amst-bench site; "
            "give a new or empty folder"
        )
    previous = manifest.read_text(encoding="utf-8").splitlines() if manifest.is_file() else []
    mode = _file_mode()
    written = []
    try:
        for rel, data in files.items():
            path = out_dir / PurePosixPath(rel)
            if path.is_file() and path.read_bytes() == data:
                continue
            atomic_write_bytes(path, data)
            path.chmod(mode)  # readable like any file the user writes (the temp file was private)
            written.append(rel)
        for rel in sorted(set(previous) - set(files)):
            stale = out_dir / PurePosixPath(rel)
            if stale.is_file() and out_dir.resolve() in stale.resolve().parents:
                stale.unlink()
        listing = ("\n".join(files) + "\n").encode()
        if not manifest.is_file() or manifest.read_bytes() != listing:
            atomic_write_bytes(manifest, listing)
    except OSError as exc:
        raise UserError(f"--site {out_dir}: not writable ({exc.strerror or exc})") from None
    return written


def build_site(
    stored: list[Stored],
    out_dir: Path,
    family_of: Callable[[str], str] | None = None,
    figures_dir: Path | None = None,
    warn: Callable[[str], None] = warn_on_stderr,
) -> dict[str, bytes]:
    """Render and write the whole site; returns what it holds (site path -> bytes)."""
    files = render_site(stored, family_of, figures_dir, warn)
    write_site(files, out_dir)
    return files
