"""Damaged, hand-edited, foreign or newer files in results/ never break `leaderboard` or `status`:
each is reported in one line naming the file, and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amst_bench.report.results import ResultStore, RunProgress
from tests.helpers import cli
from tests.result_factory import result_payload


def _edited(change) -> bytes:
    payload = result_payload("amst-alt", acc=0.4)
    change(payload)
    return json.dumps(payload).encode()


def _without(*keys):
    def change(payload):
        for key in keys:
            payload.pop(key)

    return change


VALID = json.dumps(result_payload("amst-alt", acc=0.4)).encode()

BAD_FILES = {
    "corrupt": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not readable as JSON"),
    "empty": (b"", "not readable as JSON"),
    "truncated": (VALID[: len(VALID) // 2], "not readable as JSON"),
    "missing-field": (_edited(_without("test")), "field 'test': missing"),
    "missing-nested": (_edited(lambda p: p["seconds_per_epoch"].pop("epoch")),
                       "field 'seconds_per_epoch.epoch': missing"),
    "wrong-type": (_edited(lambda p: p.update(seed="0")), "field 'seed': expected integer, got string"),
    "wrong-nested": (_edited(lambda p: p["test"].update(accuracy="high")),
                     "field 'test.accuracy': expected number, got string"),
    "bool-for-int": (_edited(lambda p: p.update(best_epoch=True)), "field 'best_epoch': expected integer"),
    "zero-epochs": (_edited(lambda p: p["seconds_per_epoch"].update(epochs=0)), "expected at least 1"),
    "foreign-object": (json.dumps({"name": "left-pad", "version": "1.3.0"}).encode(),
                       "not a result: no 'schema' field"),
    "foreign-array": (b"[1, 2, 3]", "not a result: a JSON array, not an object"),
    "bad-schema": (_edited(lambda p: p.update(schema="two")), "unknown result schema 'two'"),
    "newer": (_edited(lambda p: p.update(schema=99)),
              "refused: result schema 99 is newer than this amst-bench reads (1-4); upgrade amst-bench"),
}


def _results_with(tmp_path: Path, name: str, content: bytes) -> Path:
    root = tmp_path / "results"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "naive__synthetic__seed0.json").write_text(json.dumps(result_payload("naive", acc=0.7)))
    (root / "runs" / f"{name}.json").write_bytes(content)
    return root


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("amst-bench: warning:")]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_leaderboard_skips_a_bad_file_with_one_line(tmp_path, capsys, case):
    content, reason = BAD_FILES[case]
    root = _results_with(tmp_path, case, content)
    boards = tmp_path / "boards"
    assert cli("leaderboard", "--results-dir", str(root), "--leaderboard-dir", str(boards)) == 0
    err = capsys.readouterr().err
    [line] = _warnings(err)
    assert f"{case}.json" in line and reason in line, line
    assert ("refused" if case == "newer" else "skipped") in line
    accuracy = (boards / "accuracy.md").read_text()
    assert "70.0 (n=1)" in accuracy and "40.0" not in accuracy  # the good file counted, the bad one not


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_status_skips_a_bad_file_with_one_line(tmp_path, capsys, case):
    content, reason = BAD_FILES[case]
    root = _results_with(tmp_path, case, content)
    assert cli("status", "--results-dir", str(root)) == 0
    out, err = capsys.readouterr()
    [line] = _warnings(err)
    assert f"{case}.json" in line and reason in line, line
    assert "finished     1 run(s)  synthetic  [smoke]" in out


def test_unreadable_progress_records_are_reported_and_skipped(tmp_path, capsys):
    store = ResultStore(tmp_path)
    progress = RunProgress("good", "naive", "synthetic", 0, "smoke", 1, 4, 0.5)
    store.save_checkpoint("good", {"epoch": 0}, progress)
    (store.checkpoints_dir / "broken.json").write_text('{"run_id": "broken", "epochs_do')
    (store.checkpoints_dir / "edited.json").write_text(json.dumps({"run_id": "edited", "variant": "naive"}))
    assert cli("status", "--results-dir", str(tmp_path)) == 0
    out, err = capsys.readouterr()
    assert "resumable naive on synthetic, seed 0 [smoke]: 1/4 epochs, best val 50.0%" in out
    warnings = _warnings(err)
    assert len(warnings) == 2
    assert "broken.json: skipped: not readable as JSON" in warnings[0]
    assert "edited.json: skipped: field 'dataset': missing" in warnings[1]


def test_a_store_with_only_bad_files_still_renders(tmp_path, capsys):
    root = tmp_path / "results"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "junk.json").write_text("{")
    assert cli("leaderboard", "--results-dir", str(root), "--leaderboard-dir", str(tmp_path / "b")) == 0
    assert "No results yet" in (tmp_path / "b" / "accuracy.md").read_text()
    assert len(_warnings(capsys.readouterr().err)) == 1
