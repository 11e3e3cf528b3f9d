"""Running from a source checkout that is not installed (`PYTHONPATH=<checkout> python -m
amst_bench.cli`, e.g. on a machine that cannot pip install): pyproject.toml maps the plugin
folders `methods/` and `datasets/` to the packages `amst_bench.methods` and `amst_bench.datasets`,
and this finder does the same from the checkout. It is consulted after every other finder, so an
installed copy (a wheel, or an editable install's own finder) always wins."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PLUGIN_FOLDERS = {"amst_bench.methods": "methods", "amst_bench.datasets": "datasets"}


class CheckoutPlugins(importlib.abc.MetaPathFinder):
    """Finds `amst_bench.methods` / `amst_bench.datasets` as the checkout's plugin folders; their
    modules are then found in those folders by the ordinary path finder."""

    def find_spec(self, fullname, path=None, target=None):
        folder = PLUGIN_FOLDERS.get(fullname)
        init = CHECKOUT / folder / "__init__.py" if folder else None
        if init is None or not init.is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(init.parent)]
        )


def install() -> None:
    """Append the finder once (last: installed packages are found before it)."""
    if not any(isinstance(f, CheckoutPlugins) for f in sys.meta_path):
        sys.meta_path.append(CheckoutPlugins())
