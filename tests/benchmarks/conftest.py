"""Everything under tests/benchmarks is a pytest-benchmark timing (`bench` marker): out of the
default run, run by `nox -s bench` (README, "Micro-benchmarks")."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects, so the marker counts
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.bench)
