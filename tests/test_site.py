"""The static leaderboard site (report/site.py), checked on its generated HTML: every number equals
what the stored results give by hand, the paper's rows are labelled and apart, every link resolves,
and a rebuild changes no byte. Built from hand-made results (nothing trained)."""

from __future__ import annotations

import html
import json
import re
import statistics
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from amst_bench.errors import UserError
from amst_bench.report import reference
from amst_bench.report.publish import scan
from amst_bench.report.results import ResultStore
from amst_bench.report.site import MANIFEST, build_site, read_figures, render_site, write_site
from tests.helpers import cli
from tests.site_fixtures import ACC, FAMILIES, by_hand, family_of, write_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("published"))


@pytest.fixture(scope="module")
def site(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(scan(ResultStore(tree)), out, family_of)
    return out


# ---------------------------------------------------------------------------------------------- HTML


class Page(HTMLParser):
    """Tables (their attributes; rows with their tbody's class, attributes and cells), links, ids."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.title = ""
        self._body = self._row = self._cell = None
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if key in a:
                self.links.append(a[key])
        if tag == "title":
            self._in_title = True
        elif tag == "table":
            self.tables.append({"attrs": a, "rows": [], "head": []})
        elif tag == "tbody":
            self._body = a.get("class", "")
        elif tag == "tr":
            self._row = {"body": self._body, "attrs": a, "cells": []}
        elif tag in ("td", "th"):
            self._cell = {"attrs": a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in ("td", "th") and self._cell is not None:
            self._cell["text"] = " ".join(self._cell["text"].split())
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            if self._row["body"] is None:
                table["head"] = [c["text"].rstrip(" ↕") for c in self._row["cells"]]
            else:
                table["rows"].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._body = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell["text"] += data


def page(site: Path, name: str) -> Page:
    return Page((site / name).read_text(encoding="utf-8"))


def board(index: Page, label: str, dataset: str) -> dict:
    [table] = [
        t
        for t in index.tables
        if t["attrs"].get("data-protocol") == label and t["attrs"].get("data-dataset") == dataset
    ]
    return table


def cells(table: dict, variant: str) -> dict[str, str]:
    [row] = [
        r for r in table["rows"] if r["body"] == "measured" and r["attrs"].get("data-variant") == variant
    ]
    return {h: c["text"] for h, c in zip(table["head"], row["cells"], strict=True)}


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("key", sorted(ACC))
def test_every_index_number_equals_the_stored_results(site, key):
    label, variant, dataset = key
    accs = ACC[key]
    row = cells(board(page(site, "index.html"), label, dataset), variant)
    seeds = range(len(accs))
    assert row["accuracy %"] == by_hand([100 * a for a in accs])
    assert row["macro-F1 %"] == by_hand([100 * (a - 0.01 * s) for s, a in zip(seeds, accs, strict=True)])
    assert row["audio acc %"] == by_hand([100 * (a - 0.1) for a in accs])
    assert row["visual acc %"] == by_hand(
        [100 * (a - 0.2 + 0.01 * s) for s, a in zip(seeds, accs, strict=True)]
    )
    assert row["Shapley imb."] == f"{statistics.mean(0.3 + 0.1 * s for s in seeds):.2f}"
    assert row["φ audio"] == f"{statistics.mean(0.2 + 0.01 * s for s in seeds):.2f}"
    assert row["u visual"] == f"{statistics.mean(0.25 + 0.01 * s for s in seeds):.2f}"
    assert row["s/epoch"] == by_hand([1.0 + 0.1 * s for s in seeds], digits=2)
    assert row["× naive"] == "–"  # CPU runs: not comparable, as in the Markdown tables
    assert row["family"] == FAMILIES.get(variant.split("[")[0], "other")


def test_speed_ratio_only_on_one_accelerator(site):
    index = page(site, "index.html")
    row = cells(board(index, "bench", "synthetic"), "amst-alt")
    assert row["× naive"] == "0.75×" and row["s/epoch"] == "1.50 (n=1)"
    assert "accuracy %" not in row  # a timing profile: accuracies are not reported
    timing = cells(board(page(site, "timing.html"), "bench", "synthetic"), "amst-alt")
    assert timing["training s"] == "0.75 (n=1)" and timing["× naive (training)"] == "0.75×"
    assert timing["timed epochs"] == "4 epochs"
    assert cells(board(page(site, "timing.html"), "smoke", "synthetic"), "amst-alt")["× naive"] == "–"


def test_paper_rows_are_labelled_and_apart(site):
    index = page(site, "index.html")
    cremad = board(index, "smoke", "cremad")
    paper = [r for r in cremad["rows"] if r["body"] == "reference"]
    assert len(paper) == len([m for m, d in reference.TABLE1_ACCURACY.items() if "cremad" in d])
    for row in paper:
        method = row["cells"][0]["text"]
        assert method.startswith("paper ") and row["attrs"]["class"] == "paper"
        mean, se = reference.TABLE1_ACCURACY[method.removeprefix("paper ")]["cremad"]
        assert row["cells"][2]["text"] == f"{mean:.1f} ± {se:.2f}"
    assert all("paper" not in r["cells"][0]["text"] for r in cremad["rows"] if r["body"] == "measured")
    assert not [
        r for r in board(index, "smoke", "synthetic")["rows"] if r["body"] == "reference"
    ]  # no paper data
    section = [t for t in index.tables if t["attrs"].get("data-protocol", "").startswith("paper")]
    assert {t["attrs"]["data-dataset"] for t in section} == set(reference.DATASETS)
    assert all(r["body"] == "reference" for t in section for r in t["rows"])
    ablation = page(site, "ablation.html")
    assert [
        r["cells"][0]["text"] for t in ablation.tables for r in t["rows"] if r["body"] == "reference"
    ] == [f"paper {n}" for n in reference.TABLE2_ABLATION]


def test_detail_page_has_protocol_seeds_curves_and_json_links(site, tree):
    index = page(site, "index.html")
    [link] = [h for h in index.links if "runs/smoke-amst-alt-synthetic" in h]
    detail = page(site, unquote(link))
    assert detail.title.startswith("amst-alt on synthetic (smoke)")
    [seeds] = [t for t in detail.tables if t["head"][:2] == ["seed", "result JSON"]]
    got = [(r["cells"][0]["text"], r["cells"][4]["text"]) for r in seeds["rows"]]
    assert got == [(str(s), f"{100 * a:.1f}") for s, a in enumerate(ACC[("smoke", "amst-alt", "synthetic")])]
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / unquote(link)).read_text()))
    assert '"epochs": 4' in text and "selected epoch" in text
    assert f"accuracy %{by_hand([80.0, 83.0, 81.0])}" in text  # the summary, as the index prints it
    assert (site / unquote(link)).read_text().count("<svg") == 3
    for href in [h for h in detail.links if h.endswith(".json")]:
        name = Path(unquote(href)).name
        assert (site / "results" / name).read_bytes() == (tree / "runs" / name).read_bytes()


def test_every_link_is_relative_and_resolves(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 3 + len(ACC) + 2  # index, timing, ablation + one per (label, variant, dataset)
    for path in pages:
        parsed = page(site, str(path.relative_to(site)))
        for link in parsed.links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc and not link.startswith("/"), (path, link)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            assert target.is_file() and site.resolve() in target.parents, (path, link)
            if parts.fragment:
                assert parts.fragment in page(site, str(target.relative_to(site.resolve()))).ids, (path, link)


def test_rebuild_changes_no_byte_and_prunes_stale_pages(tree, tmp_path):
    stored = scan(ResultStore(tree))
    first = render_site(stored, family_of)
    assert render_site(list(reversed(stored)), family_of) == first
    out = tmp_path / "site"
    write_site(first, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert write_site(render_site(stored, family_of), out) == []  # nothing rewritten
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    fewer = [s for s in stored if s.result.variant != "my-method"]
    write_site(render_site(fewer, family_of), out)
    assert not list(out.glob("runs/*my-method*")) and not list(out.glob("results/my-method*"))
    assert (out / MANIFEST).is_file()


def test_figures_listed_in_the_index_are_embedded_and_copied(tree, tmp_path):
    figures = tmp_path / "figures"
    (figures / "smoke").mkdir(parents=True)
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
    )
    (figures / "smoke" / "curves-amst-alt.png").write_bytes(png)
    (figures / "smoke" / "entropy.png").write_bytes(png)
    (figures / "index.json").write_text(
        json.dumps(
            [
                {
                    "kind": "curves",
                    "protocol": "smoke",
                    "dataset": "synthetic",
                    "variant": "amst-alt",
                    "path": "smoke/curves-amst-alt.png",
                },
                {
                    "kind": "entropy",
                    "protocol": "smoke",
                    "dataset": "synthetic",
                    "variant": None,
                    "path": "smoke/entropy.png",
                },
                {
                    "kind": "speed",
                    "protocol": "smoke",
                    "dataset": "synthetic",
                    "variant": None,
                    "path": "missing.png",
                },
                {
                    "kind": "curves",
                    "protocol": "smoke",
                    "dataset": "synthetic",
                    "variant": None,
                    "path": "../escape.png",
                },
            ]
        )
    )
    warnings: list[str] = []
    files = render_site(scan(ResultStore(tree)), family_of, figures, warnings.append)
    assert files["figures/smoke/curves-amst-alt.png"] == png and files["figures/smoke/entropy.png"] == png
    assert len(warnings) == 2 and "missing.png does not exist" in warnings[0] and "outside" in warnings[1]
    index = files["index.html"].decode()
    assert index.count("<img") == 1 and 'src="figures/smoke/entropy.png"' in index
    [detail] = [v.decode() for k, v in files.items() if k.startswith("runs/smoke-amst-alt-synthetic")]
    assert 'src="../figures/smoke/curves-amst-alt.png"' in detail
    without = render_site(scan(ResultStore(tree)), family_of, tmp_path / "none")
    assert not any(k.startswith("figures/") for k in without) and b"<img" not in without["index.html"]


def test_publish_site_alone_builds_from_the_published_tree(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "web"
    assert cli("publish", "--site", str(out), "--to", str(tree)) == 0
    assert "site written" in capsys.readouterr().out and (out / "index.html").is_file()
    assert not (tmp_path / "leaderboards").exists()  # nothing copied, no tables regenerated
    row = cells(board(page(out, "index.html"), "smoke", "synthetic"), "amst-alt")
    assert row["family"] == "alternating"  # from the registered method class


@pytest.mark.parametrize("case", ["file", "foreign-folder", "no-runs"])
def test_publish_site_bad_input_is_one_line(tree, tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    target, to = tmp_path / "out", tree
    if case == "file":
        target.write_text("x")
    elif case == "foreign-folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    else:
        to = tmp_path / "empty"
    assert cli("publish", "--site", str(target), "--to", str(to)) != 0
    err = capsys.readouterr().err.strip()
    expected = {
        "file": f"--site {target}: not a folder",
        "foreign-folder": f"--site {target}: exists, is not empty and is not an amst-bench site",
        "no-runs": f"--to {to}: no {to / 'runs'} folder",
    }[case]
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err
    if case == "foreign-folder":
        assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_write_site_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an amst-bench site"):
        write_site({"index.html": b"x"}, tmp_path)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "not readable as JSON"),
        ('{"kind": "curves"}', "expected a JSON list of figures"),
        ('[{"kind": "curves", "protocol": "smoke"}]', "entry 0: expected kind, protocol, dataset and path"),
        ('[{"kind": "pie", "protocol": "p", "dataset": "d", "path": "x.png"}]', "kind must be one of"),
    ],
    ids=["not-json", "not-a-list", "missing-field", "unknown-kind"],
)
def test_a_malformed_figure_index_is_one_warning_and_no_figures(tmp_path, content, expected):
    (tmp_path / "index.json").write_text(content)
    (tmp_path / "x.png").write_bytes(b"png")
    warnings: list[str] = []
    assert read_figures(tmp_path, warnings.append) == []
    assert len(warnings) == 1 and expected in warnings[0] and warnings[0].startswith("amst-bench: warning: ")
