"""Per-epoch curves as inline SVG, drawn in Python from a result's `curves`: no plotting library at
view time, and the same bytes on every build (coordinates printed with fixed decimals)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from amst_bench.report.site_html import esc

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 150, 26, 34


@dataclass(frozen=True)
class Series:
    """One line: its name in the legend, (x, y) points (None gaps are dropped), and its look."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dash: str = ""
    marker: float | None = None  # an x to mark with a dot (the selected epoch)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    text = f"{value:.3g}"
    return "0" if text in ("-0", "0") else text


def line_chart(title: str, series: Sequence[Series], y_label: str, x_label: str = "epoch") -> str:
    """An SVG line chart with axes, ticks and a legend on the right; an empty note if no data."""
    values = [(x, y) for s in series for x, y in s.points if y is not None and math.isfinite(y)]
    if not values:
        return f'<p class="note">{esc(title)}: not recorded in these results.</p>'
    xs, ys = [x for x, _ in values], [y for _, y in values]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (plot_w * (x - x0) / (x1 - x0) if x1 > x0 else plot_w / 2)

    def py(y: float) -> float:
        return TOP + plot_h * (1 - (y - y0) / (y1 - y0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{esc(title)}">',
        f'<text x="{LEFT}" y="16" class="title">{esc(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    for t in _ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="grid"/>'
            f'<text x="{LEFT - 4}" y="{py(t) + 4:.1f}" class="tick" text-anchor="end">{_fmt(t)}</text>'
        )
    for t in _ticks(x0, x1, 6):
        if float(t).is_integer():
            parts.append(
                f'<text x="{px(t):.1f}" y="{TOP + plot_h + 14}" class="tick" '
                f'text-anchor="middle">{int(t)}</text>'
            )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" class="axis" text-anchor="middle">'
        f"{esc(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2:.1f}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">{esc(y_label)}</text>'
    )
    for i, s in enumerate(series):
        pts = [(x, y) for x, y in s.points if y is not None and math.isfinite(y)]
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}>'
                f"<title>{esc(s.name)}</title></polyline>"
            )
        marked = [(x, y) for x, y in pts if s.marker is not None and x == s.marker]
        for x, y in marked:
            parts.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.2" fill="{s.color}">'
                f"<title>{esc(s.name)}: selected epoch {_fmt(x)}</title></circle>"
            )
        ly = TOP + 10 + 15 * i
        lx = LEFT + plot_w + 10
        parts.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="{s.color}" '
            f'stroke-width="2"{dash}/><text x="{lx + 22}" y="{ly + 4}" class="legend">{esc(s.name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def per_epoch(
    values: Sequence[float | None], epochs: Sequence[int] | None = None, scale: float = 1.0
) -> list[tuple[float, float | None]]:
    """(epoch, value × scale) pairs; epochs default to 0, 1, …"""
    xs = list(epochs) if epochs is not None and len(epochs) == len(values) else list(range(len(values)))
    return [(float(x), None if v is None else float(v) * scale) for x, v in zip(xs, values, strict=True)]
