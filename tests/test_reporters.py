"""Reporters: the protocol declares every call the runner and trainer make, and both reporters
implement all of it; reading results never loads torch."""

from __future__ import annotations

import ast
import inspect
import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from amst_bench.report.progress import RichReporter
from amst_bench.train.trainer import EpochReporter, SilentReporter
from tests.result_factory import make_result

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(EpochReporter).items()
        if callable(member) and not name.startswith("_")
    }


def _reporter_calls(path: Path) -> set[str]:
    """Names of methods called on `reporter` or `self.reporter` in a source file."""
    calls = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (isinstance(owner, ast.Name) and owner.id == "reporter") or (
                isinstance(owner, ast.Attribute) and owner.attr == "reporter"
            ):
                calls.add(node.func.attr)
    return calls


def test_protocol_declares_every_call_the_runner_and_trainer_make():
    declared = set(_declared())
    assert {"start_run", "end_epoch", "end_run", "skipped"} <= declared
    for path in (ROOT / "amst_bench" / "runner.py", ROOT / "amst_bench" / "train" / "trainer.py"):
        assert _reporter_calls(path) <= declared, path.name
        assert "hasattr(reporter" not in path.read_text(), path.name


@pytest.mark.parametrize("cls", [SilentReporter, RichReporter])
def test_reporters_implement_the_whole_protocol(cls):
    for name, signature in _declared().items():
        method = getattr(cls, name, None)
        assert callable(method), f"{cls.__name__} lacks {name}"
        assert list(inspect.signature(method).parameters) == list(signature.parameters), name


class _Spec:
    label = "amst-alt on synthetic, seed 0"


def test_rich_reporter_lines_without_a_terminal():
    out = io.StringIO()
    reporter = RichReporter(3, Console(file=out, force_terminal=False, width=200))
    with reporter:
        reporter.skipped(_Spec())
        reporter.busy(_Spec())
        reporter.start_run(_Spec(), epochs=2, first_epoch=0)
        reporter.end_epoch(0, 1.0, 0.5, 0.5)
        reporter.end_run(make_result("amst-alt", acc=0.75, epoch_s=1.25))
    skipped, busy, finished = out.getvalue().splitlines()  # one line each, nothing per epoch
    assert _Spec.label in skipped and "--force" in skipped
    assert _Spec.label in busy and "another process" in busy
    assert "amst-alt on synthetic" in finished and "test acc 75.0% at epoch 0, 1.25 s/epoch" in finished


def test_status_and_leaderboard_do_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "from amst_bench.cli import main\n"
        f"for args in (['status', '--results-dir', {str(ROOT / 'published')!r}],\n"
        f"             ['leaderboard', '--results-dir', {str(ROOT / 'published')!r},\n"
        f"              '--leaderboard-dir', {str(tmp_path)!r}]):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
