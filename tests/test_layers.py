"""Imports run one way: data → (nothing above it), report → (not train), train → data/report,
runner/cli on top; plugins import the engine, never the runner or the CLI. Checked on the source
(imports under `if TYPE_CHECKING:` are type hints only and do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "amst_bench/data": ("amst_bench.train", "amst_bench.report", "amst_bench.runner", "amst_bench.cli"),
    "amst_bench/report": ("amst_bench.train", "amst_bench.data", "amst_bench.runner", "amst_bench.cli"),
    "amst_bench/train": ("amst_bench.runner", "amst_bench.cli"),
    "methods": ("amst_bench.runner", "amst_bench.cli", "amst_bench.datasets"),
    "datasets": ("amst_bench.runner", "amst_bench.cli", "amst_bench.methods", "amst_bench.train"),
}


def runtime_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    type_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for n in ast.walk(stmt)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_run_one_way(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in runtime_imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert bad == []
