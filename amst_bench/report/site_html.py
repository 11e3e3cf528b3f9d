"""HTML building blocks of the leaderboard site: escaping, the page shell, tables and number cells.

Plain strings, escaped here once, so the pages need no template engine; every number is formatted
by the same fixed rules (no locale, no timestamps), which keeps a rebuild byte-identical.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

DASH = "–"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def href(path: str) -> str:
    """A relative link, percent-encoded (file names may hold brackets, '=' or spaces)."""
    return esc(quote(path, safe="/#.-_~"))


def attrs(**values: Any) -> str:
    """` key="value"` pairs for the given attributes (None left out; '_' in a name becomes '-')."""
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in values.items() if v is not None
    )


def sort_value(value: float | None) -> str | None:
    """What the sort script compares: the full mean, printed the same on every build."""
    return None if value is None else f"{value:.6f}"


@dataclass(frozen=True)
class Cell:
    """One table cell: its text (HTML-escaped unless `raw`), the value it sorts by, and a class."""

    text: str
    sort: str | None = None
    cls: str | None = None
    title: str | None = None
    raw: bool = False

    def render(self) -> str:
        body = self.text if self.raw else esc(self.text)
        return f"<td{attrs(class_=self.cls, data_v=self.sort, title=self.title)}>{body}</td>"


def stat_cell(
    stat: tuple[float, float | None, int | None] | None,
    digits: int = 1,
    cls: str | None = None,
    title: str | None = None,
) -> Cell:
    """ "72.0 ± 1.15 (n=3)", as the Markdown tables print it (SE with two decimals; n absent for the
    paper's numbers)."""
    if stat is None:
        return Cell(DASH, cls=cls, title=title)
    mean, se, n = stat
    parts = [f'<span class="mean">{mean:.{digits}f}</span>']
    if se is not None:
        parts.append(f'<span class="se">± {se:.2f}</span>')
    if n is not None:
        parts.append(f'<span class="n">(n={n})</span>')
    return Cell(" ".join(parts), sort_value(mean), cls, title, raw=True)


def number_cell(value: float | None, digits: int = 2, suffix: str = "", title: str | None = None) -> Cell:
    if value is None:
        return Cell(DASH, title=title)
    return Cell(f"{value:.{digits}f}{suffix}", sort_value(value), title=title)


@dataclass(frozen=True)
class Column:
    """A table column: its header and whether it sorts as a number."""

    title: str
    numeric: bool = True
    tip: str | None = None
    key: str | None = None  # a stable name for tests and scripts (data-key)


def table(
    columns: Sequence[Column],
    rows: Iterable[tuple[dict[str, Any], Sequence[Cell]]],
    reference: Iterable[tuple[dict[str, Any], Sequence[Cell]]] = (),
    **table_attrs: Any,
) -> str:
    """A sortable table: measured rows in the sortable body, the paper's rows (if any) in a body of
    their own that the script never mixes into the sort."""
    head = "".join(
        f"<th{attrs(scope='col', data_type='num' if c.numeric else 'text', data_key=c.key, title=c.tip)}>"
        f'<button type="button" class="sort">{esc(c.title)}</button></th>'
        for c in columns
    )
    body = "".join(
        f"<tr{attrs(**row_attrs)}>{''.join(c.render() for c in cells)}</tr>" for row_attrs, cells in rows
    )
    ref = "".join(
        f'<tr class="paper"{attrs(**row_attrs)}>{"".join(c.render() for c in cells)}</tr>'
        for row_attrs, cells in reference
    )
    ref_body = f'<tbody class="reference">{ref}</tbody>' if ref else ""
    return (
        f'<div class="scroll"><table{attrs(class_="board", **table_attrs)}><thead><tr>{head}</tr></thead>'
        f'<tbody class="measured">{body}</tbody>{ref_body}</table></div>'
    )


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "plain") -> str:
    """A small, unsorted table of already-escaped cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table_html = f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table_html}</div>'


def json_block(value: Any) -> str:
    """A JSON value as readable, stable text (keys sorted)."""
    return f"<pre>{esc(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))}</pre>"


NAV = (("index.html", "Leaderboard"), ("timing.html", "Timing"), ("ablation.html", "Ablation"))


def page(title: str, body: str, *, root: str = "", current: str = "", script: bool = False) -> str:
    """A whole page. `root` is the relative way back to the site's top ("" or "../"), so every link
    works from the file system and from any static host."""
    marked = ' aria-current="page"'
    nav = " ".join(
        f'<a href="{href(root + target)}"{marked if target == current else ""}>{esc(name)}</a>'
        for target, name in NAV
    )
    js = f'<script src="{href(root + "assets/site.js")}" defer></script>' if script else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{esc(title)}</title>'
        f'<link rel="stylesheet" href="{href(root + "assets/site.css")}">{js}</head>\n'
        f'<body><header><nav><span class="brand">amst-bench</span> {nav}</nav></header>\n'
        f"<main>\n{body}\n</main>\n"
        "<footer>Generated by <code>amst-bench publish --site</code> from the published results; "
        "the same aggregation as the Markdown leaderboards. Paper rows are the AMST paper's reported "
        "numbers, never measured here.</footer>\n</body></html>\n"
    )
