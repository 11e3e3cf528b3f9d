"""The ablation grid is declared once (report.reference.ABLATION_EXPERIMENTS): the `ablation`
command plans exactly its variants and ablation.md shows exactly its rows."""

from __future__ import annotations

import re

from amst_bench import cli
from amst_bench.data.refs import select_datasets
from amst_bench.protocol import get_profile
from amst_bench.report import reference
from amst_bench.report.leaderboard import build_leaderboards
from amst_bench.report.reference import ABLATION_EXPERIMENTS, AblationExperiment, ablation_variants
from amst_bench.runner import GridRequest, plan
from tests.result_factory import make_result


def _planned_variants(variants) -> list[str]:
    request = GridRequest(methods=[], datasets=select_datasets("synthetic"), seeds=[0],
                          protocol=get_profile("smoke"), variants=variants)
    return [spec.variant for spec in plan(request)]


def _ablation_rows(results) -> dict[str, str]:
    """Exp number -> its measured cell, from ablation.md's measured section."""
    text = build_leaderboards(results)["ablation.md"].split("## Paper reference")[0]
    return {m[0]: m[1] for m in re.findall(r"^\| (\d)\s+\|.*\| ([^|]+?)\s+\|$", text, flags=re.M)}


def test_the_cli_plans_the_declared_grid():
    assert cli.ABLATION_VARIANTS == ablation_variants()
    declared = [e.variant for e in ABLATION_EXPERIMENTS.values()]
    assert _planned_variants(cli.ABLATION_VARIANTS) == declared
    assert declared == ["amst-joint[skip_enabled=False]", "amst-joint", "amst-alt[skip_enabled=False]",
                        "amst-alt", "amst-full[skip_enabled=False]", "amst-full"]
    assert all(e.skip == (("skip_enabled", False) not in e.options) for e in ABLATION_EXPERIMENTS.values())


def test_runs_of_the_planned_grid_fill_every_ablation_row():
    results = [make_result(variant, acc=0.5 + exp / 100)
               for exp, variant in enumerate(_planned_variants(cli.ABLATION_VARIANTS), start=1)]
    rows = {exp: re.sub(r"\*\*|</?u>", "", cell) for exp, cell in _ablation_rows(results).items()}
    assert rows == {str(exp): f"{50 + exp:.1f} (n=1)" for exp in range(1, 7)}


def test_one_change_to_the_declaration_moves_both(monkeypatch):
    """Run exp 3 with another option as well: the plan and the table follow the one declaration."""
    changed = dict(ABLATION_EXPERIMENTS)
    changed[3] = AblationExperiment(alt=True, joint=False, skip=False, method="amst-alt",
                                    options=(("skip_enabled", False), ("skipped_forward", "none")))
    monkeypatch.setattr(reference, "ABLATION_EXPERIMENTS", changed)
    planned = _planned_variants(ablation_variants())
    assert planned[2] == "amst-alt[skip_enabled=False;skipped_forward=none]"
    rows = _ablation_rows([make_result(planned[2], acc=0.61), make_result("amst-alt[skip_enabled=False]")])
    assert rows["3"] == "61.0 (n=1)"  # the old variant is no longer an ablation row
