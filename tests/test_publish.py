"""A user's runs stay in ./amst-results (nothing else written); `amst-bench publish` copies chosen
runs into the published tree, one code version per protocol, and regenerates its leaderboards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amst_bench.atomic import atomic_write_json
from amst_bench.protocol import stable_hash
from amst_bench.report.leaderboard import build_leaderboards
from amst_bench.report.publish import method_version
from amst_bench.report.results import ResultStore, RunResult
from tests.helpers import cli, error_line
from tests.result_factory import result_payload


def store_runs(root: Path, *payloads: dict) -> None:
    for p in payloads:
        atomic_write_json(root / "runs" / f"{p['run_id']}.json", p)


def run(variant="naive", seed=0, *, label="smoke", package="0.1.0", version=1, acc=0.5, **kw) -> dict:
    payload = result_payload(variant, seed=seed, label=label, acc=acc, profile=label.split()[0], **kw)
    payload["run_id"] += f"__{label.split()[0]}"
    payload["versions"] = {"amst_bench": package, "method_version": version}
    return payload


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """cwd = an empty folder, no $AMST_BENCH_RESULTS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AMST_BENCH_RESULTS", raising=False)
    return tmp_path


def test_a_run_writes_only_under_amst_results(in_tmp, capsys):
    args = ("--methods", "naive", "--seeds", "0", "--profile", "smoke", "--set", "epochs=1")
    assert cli("run", *args) == 0
    assert sorted(p.name for p in in_tmp.iterdir()) == ["amst-results"]
    [stored] = (in_tmp / "amst-results" / "runs").glob("*.json")
    assert json.loads(stored.read_text())["versions"]["method_version"] == 1
    assert (in_tmp / "amst-results" / "leaderboards" / "accuracy.md").is_file()
    assert not (in_tmp / "leaderboards").exists()
    capsys.readouterr()
    assert cli("status") == 0
    assert "finished     1 run(s)  synthetic  [smoke (epochs=1)]" in capsys.readouterr().out
    assert cli("leaderboard") == 0
    assert sorted(p.name for p in in_tmp.iterdir()) == ["amst-results"]


def test_the_results_folder_comes_from_the_environment(in_tmp, monkeypatch):
    store_runs(in_tmp / "mine", run())
    monkeypatch.setenv("AMST_BENCH_RESULTS", str(in_tmp / "mine"))
    assert cli("leaderboard") == 0
    assert (in_tmp / "mine" / "leaderboards" / "accuracy.md").is_file()
    assert cli("leaderboard", "--leaderboard-dir", "boards") == 0
    assert (in_tmp / "boards" / "timing.md").is_file()
    assert sorted(p.name for p in in_tmp.iterdir()) == ["boards", "mine"]


def test_publish_copies_the_runs_and_regenerates_byte_identically(in_tmp, capsys):
    payloads = [run("naive", s, acc=0.5 + s / 10) for s in range(3)] + [run("amst-alt", 0, label="bench")]
    store_runs(in_tmp / "amst-results", *payloads)
    assert cli("publish") == 0
    assert "published 4 run(s) into published/runs" in capsys.readouterr().out
    assert files(in_tmp / "published" / "runs") == files(in_tmp / "amst-results" / "runs")
    boards = files(in_tmp / "leaderboards")
    results = ResultStore(in_tmp / "published").load_results()
    assert boards == {n: t.encode() for n, t in build_leaderboards(results).items()}
    assert "| naive     | 60.0 ± 5.77 (n=3) |" in boards["accuracy.md"].decode()
    assert cli("publish") == 0 and "published 0 run(s)" in capsys.readouterr().out  # nothing new
    assert files(in_tmp / "leaderboards") == boards
    (in_tmp / "leaderboards" / "accuracy.md").write_text("hand-edited")
    assert cli("leaderboard", "--published") == 0
    assert files(in_tmp / "leaderboards") == boards


def test_publish_chooses_runs_by_method_dataset_and_label(in_tmp, capsys):
    store_runs(in_tmp / "r", run("naive"), run("amst-alt"), run("naive", label="bench"))
    assert cli("publish", "--from", "r", "--runs", "amst-*", "--runs", "*/synthetic/bench") == 0
    assert sorted(files(in_tmp / "published" / "runs")) == [
        "amst-alt__synthetic__seed0__smoke.json", "naive__synthetic__seed0__bench.json"]
    line = error_line(capsys, "publish", "--from", "r", "--runs", "mla")
    assert line == "amst-bench: error: --runs mla: matches no finished run in r/runs"


def test_publish_refuses_mixed_code_versions_in_one_line(in_tmp, capsys):
    store_runs(in_tmp / "r", run("naive", 0, version=1), run("naive", 1, version=2), run("mla", version=2))
    line = error_line(capsys, "publish", "--from", "r")
    assert line == (
        "amst-bench: error: publish: the naive runs under protocol 'smoke' come from different method "
        "versions (v1, v2); publish one code version per protocol (choose with --runs)"
    )
    store_runs(in_tmp / "s", run("naive", 0), run("mla", package="0.2.0"))
    line = error_line(capsys, "publish", "--from", "s")
    assert "the runs under protocol 'smoke' come from different amst-bench versions (0.1.0, 0.2.0)" in line
    assert not (in_tmp / "published").exists() and not (in_tmp / "leaderboards").exists()
    # different methods may have different versions, and one label does not constrain another
    store_runs(in_tmp / "t", run("naive"), run("mla", version=2), run("naive", label="bench", version=3))
    assert cli("publish", "--from", "t") == 0


def test_publish_never_removes_or_overwrites_a_published_run_unless_asked(in_tmp, capsys):
    store_runs(in_tmp / "published", run("naive", 0), run("mla", 0), run("naive", 0, label="bench"))
    before = files(in_tmp / "published" / "runs")
    store_runs(in_tmp / "r", run("amst-alt", 0))  # a new method: added, the others kept
    assert cli("publish", "--from", "r") == 0
    after = files(in_tmp / "published" / "runs")
    assert len(after) == 4 and {k: after[k] for k in before} == before

    store_runs(in_tmp / "new", run("naive", 0, acc=0.9))  # the same run, measured again
    line = error_line(capsys, "publish", "--from", "new")
    assert line.startswith(
        "amst-bench: error: publish: published/runs/naive__synthetic__seed0__smoke.json holds "
        "another result of run naive__synthetic__seed0__smoke; add --replace"
    )
    store_runs(in_tmp / "v2", run("naive", 1, version=2))  # naive's code changed
    line = error_line(capsys, "publish", "--from", "v2")
    assert "is published under protocol 'smoke' from amst-bench 0.1.0 + naive v1, the new runs from " \
           "amst-bench 0.1.0 + naive v2; add --replace" in line
    assert files(in_tmp / "published" / "runs") == after

    assert cli("publish", "--from", "v2", "--replace") == 0
    now = files(in_tmp / "published" / "runs")
    assert "naive__synthetic__seed0__smoke.json" not in now  # v1 naive under smoke replaced
    assert {"mla__synthetic__seed0__smoke.json", "naive__synthetic__seed0__bench.json",
            "naive__synthetic__seed1__smoke.json", "amst-alt__synthetic__seed0__smoke.json"} == set(now)


def test_publish_mistakes_are_one_line(in_tmp, capsys):
    assert error_line(capsys, "publish") == (
        "amst-bench: error: --from amst-results: no such folder (run `amst-bench run` first)")
    (in_tmp / "r" / "runs").mkdir(parents=True)
    line = error_line(capsys, "publish", "--from", "r")
    assert line == "amst-bench: error: --from r: no finished runs in r/runs"
    assert "are the same folder" in error_line(capsys, "publish", "--from", "r", "--to", "r")
    assert error_line(capsys, "leaderboard", "--published") == (
        "amst-bench: error: --published: no published/runs here (run it in the repository's root)")


def test_method_version_is_recovered_from_the_config_hash_of_older_results():
    payload = result_payload("mla")
    identity = {"method": "mla", "method_config": {}, "dataset": "synthetic", "dataset_options": {},
                "protocol": {"epochs": 12}}
    payload["config_hash"] = stable_hash(identity)
    assert method_version(RunResult.from_json(payload)) == 1
    payload["config_hash"] = stable_hash({**identity, "method_version": 2})
    assert method_version(RunResult.from_json(payload)) == 2
    payload["versions"] = {"method_version": 3}  # recorded wins
    assert method_version(RunResult.from_json(payload)) == 3


def test_the_committed_published_runs_have_one_code_version_per_protocol():
    from amst_bench.report.publish import check_one_version, scan

    root = Path(__file__).resolve().parents[1] / "published"
    check_one_version(scan(ResultStore(root)))
