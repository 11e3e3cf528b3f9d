"""A dataset's identity is its registered name: `NAME:PATH` gives the folder, never the identity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amst_bench.data.refs import DatasetRef, select_datasets
from amst_bench.errors import UserError
from tests.fixtures import make_cremad
from tests.helpers import cli, smoke_run


def test_a_reference_parses_name_and_path():
    assert DatasetRef.parse("cremad:/data/CREMA-D") == DatasetRef("cremad", Path("/data/CREMA-D"))
    assert DatasetRef.parse("cremad") == DatasetRef("cremad", None)
    assert [r.name for r in select_datasets("synthetic,cremad:/x")] == ["synthetic", "cremad"]


def test_one_name_with_two_folders_is_an_error():
    with pytest.raises(UserError, match="named twice"):
        select_datasets("cremad:/a,cremad:/b")


def test_presets_ids_and_columns_see_the_name_and_a_moved_folder_is_the_same_run(tmp_path, capsys):
    first = tmp_path / "first" / "CREMA-D"
    make_cremad(first)
    extra = ("--set", "pmr.preset=original", "--cache-dir", str(tmp_path / "cache"))
    [result] = smoke_run(tmp_path, "pmr", f"cremad:{first}", *extra)
    # PMR's original preset is looked up by dataset name: α = 5.0 on CREMA-D (not the 1.0 fallback).
    assert result["method_resolved"]["alpha"] == 5.0
    assert result["dataset"] == "cremad"
    assert str(first) not in result["run_id"]
    assert result["dataset_info"]["source"] == str(first.resolve())
    board = (tmp_path / "b" / "accuracy.md").read_text()
    assert "cremad" in board and str(first) not in board

    moved = tmp_path / "moved" / "CREMA-D"
    shutil.move(str(first.parent), str(moved.parent))
    capsys.readouterr()
    code = cli("run", "--methods", "pmr", "--datasets", f"cremad:{moved}", "--seeds", "0", "--profile",
               "smoke", "--set", "epochs=1", "--results-dir", str(tmp_path / "r"), "--leaderboard-dir",
               str(tmp_path / "b"), *extra)
    assert code == 0
    assert len(list((tmp_path / "r" / "runs").glob("*.json"))) == 1  # found done, not rerun
