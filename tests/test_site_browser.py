"""The leaderboard site in a real headless Chromium (Debian's `chromium` package; skipped where it is
absent): open the index from the file system, sort by accuracy, filter by a dataset, follow a method
link to its page, and check what a person would see there. Screenshots go to tmp_path, or to
$AMST_BENCH_SCREENSHOTS when set (to look at them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.chromium import Browser, find_chromium
from tests.helpers import cli
from tests.site_fixtures import ACC, by_hand, write_tree

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (Debian: apt-get install chromium; or set AMST_BENCH_CHROMIUM); "
        "the site's HTML is still checked by tests/test_site.py",
    ),
]

SYNTHETIC = 'table[data-protocol="smoke"][data-dataset="synthetic"]'


@pytest.fixture
def browser(tmp_path):
    b = Browser(CHROMIUM, tmp_path / "profile")
    yield b
    b.close()


def visible_rows(b: Browser, table: str) -> list[list[str]]:
    """The rows a person sees in a table, top to bottom, as the text of each cell."""
    return b.js(
        f"Array.from(document.querySelectorAll({json.dumps(table + ' tbody tr')}))"
        ".filter(r => r.offsetParent !== null).map(r => Array.from(r.cells).map(c => c.innerText.trim()))"
    )


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AMST_BENCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_sort_filter_and_follow_a_link(browser, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tree, site = write_tree(tmp_path / "published"), tmp_path / "site"
    assert cli("publish", "--site", str(site), "--to", str(tree)) == 0
    b = browser
    b.open((site / "index.html").as_uri())
    assert b.js("document.title") == "amst-bench leaderboard"
    assert "not measured here" in b.js("document.body.innerText")  # the script and style loaded offline
    assert b.js("getComputedStyle(document.querySelector('header')).backgroundColor") == "rgb(29, 35, 48)"

    # Sort by accuracy: best first, then reversed on a second click.
    b.click(f"{SYNTHETIC} th[data-key='accuracy'] button")
    means = {v: sum(a) / len(a) for (label, v, d), a in ACC.items() if (label, d) == ("smoke", "synthetic")}
    best_first = sorted(means, key=means.get, reverse=True)
    rows = visible_rows(b, SYNTHETIC)
    assert [r[0] for r in rows] == best_first
    assert rows[0][2] == by_hand([100 * a for a in ACC[("smoke", best_first[0], "synthetic")]])
    heading = f"{SYNTHETIC} th[data-key='accuracy']"
    assert b.js(f"document.querySelector({json.dumps(heading)}).getAttribute('aria-sort')") == "descending"
    b.click(f"{SYNTHETIC} th[data-key='accuracy'] button")
    assert [r[0] for r in visible_rows(b, SYNTHETIC)] == best_first[::-1]

    # Sorting a table with the paper's rows keeps them below the measured ones, labelled.
    cremad = 'table[data-protocol="smoke"][data-dataset="cremad"]'
    b.click(f"{cremad} th[data-key='accuracy'] button")
    rows = visible_rows(b, cremad)
    assert [r[0] for r in rows[:2]] == ["amst-alt", "naive"]
    assert rows[2:] and all(r[0].lower().startswith("paper") for r in rows[2:])

    # Filter by a dataset: only its tables (measured and the paper's) stay visible.
    b.js(
        "(() => { const s = document.querySelector('#filter-dataset'); s.value = 'cremad';"
        " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )
    shown = b.js(
        "Array.from(document.querySelectorAll('section.board-section'))"
        ".filter(s => s.offsetParent !== null).map(s => s.dataset.dataset)"
    )
    assert shown and set(shown) == {"cremad"}
    assert visible_rows(b, SYNTHETIC) == []
    assert b.js("document.querySelector('#shown').innerText") == "2 measured rows shown"
    b.screenshot(shots(tmp_path) / "site-index-filtered.png")

    # And by method family: the paper's rows follow the same filter.
    b.js(
        "(() => { const s = document.querySelector('#filter-family'); s.value = 'alternating';"
        " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )
    rows = visible_rows(b, cremad)
    assert rows[0][0] == "amst-alt" and all(r[1] == "alternating" for r in rows)
    assert sorted(r[0] for r in rows[1:]) == sorted(
        f"PAPER {m}" for m in ("mla", "amst-alt", "amst-joint", "amst-full")
    )
    b.js(
        "(() => { const s = document.querySelector('#filter-family'); s.value = '';"
        " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )

    # Follow a method link to its page: the title and the numbers a person reads there.
    b.events.clear()
    b.click(f"{cremad} tbody.measured tr[data-variant='amst-alt'] a")
    b.wait_for("Page.loadEventFired")
    assert b.js("document.title").startswith("amst-alt on cremad (smoke)")
    text = b.js("document.body.innerText")
    accs = ACC[("smoke", "amst-alt", "cremad")]
    assert (
        f"accuracy %\n{by_hand([100 * a for a in accs])}" in text
        or f"accuracy %\t{by_hand([100 * a for a in accs])}" in text
    )
    seed_rows = visible_rows(b, "table.seeds")
    assert [(r[0], r[4]) for r in seed_rows] == [(str(s), f"{100 * a:.1f}") for s, a in enumerate(accs)]
    assert b.js("document.querySelectorAll('svg.chart').length") == 3
    b.screenshot(shots(tmp_path) / "site-detail.png", full_page=True)
    assert (shots(tmp_path) / "site-detail.png").stat().st_size > 10_000
