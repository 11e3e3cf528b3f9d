"""The registries: wildcard selection, clear errors, and plugins from outside packages."""

from __future__ import annotations

import sys
import textwrap

import pytest

from amst_bench import registry
from amst_bench.errors import UserError
from amst_bench.registry import Registry


def test_wildcards_select_in_order_without_duplicates():
    assert registry.methods.select("amst-*,naive") == ["amst-alt", "amst-full", "amst-joint", "naive"]
    assert registry.methods.select("naive,naive") == ["naive"]
    assert "naive" in registry.methods.select("all")


@pytest.mark.parametrize("spec", ["nope", "zz-*", ""])
def test_unknown_names_raise_one_clear_error(spec):
    with pytest.raises(UserError):
        registry.methods.select(spec)


def test_outside_package_registers_a_method_through_the_entry_point_group(tmp_path, monkeypatch):
    """An installed distribution (a dist-info folder on sys.path) adds a method without any
    change to this repository."""
    (tmp_path / "outside_plugin.py").write_text(textwrap.dedent('''
        from amst_bench.train.method import Method

        class Outside(Method):
            description = "a method from another package"
    '''))
    dist = tmp_path / "outside_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: outside-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[amst_bench.methods]\nouter-method = outside_plugin:Outside\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh = Registry("method", registry.METHOD_GROUP)
    assert "outer-method" in fresh.names()
    assert fresh.get("outer-method").description == "a method from another package"
    sys.modules.pop("outside_plugin", None)


def test_built_in_plugins_are_declared_in_the_same_entry_point_group():
    from importlib.metadata import entry_points

    declared = {ep.name for ep in entry_points(group=registry.METHOD_GROUP)}
    assert {"naive", "amst-alt", "amst-joint", "amst-full", "unimodal"} <= declared
    assert "synthetic" in {ep.name for ep in entry_points(group=registry.DATASET_GROUP)}
