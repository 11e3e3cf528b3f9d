"""The registries: wildcard selection, clear errors, and plugins from outside packages."""

from __future__ import annotations

import sys
import textwrap

import pytest

from amst_bench import registry
from amst_bench.errors import UserError
from amst_bench.registry import Registry


def test_wildcards_select_in_order_without_duplicates():
    amst = [n for n in registry.methods.names() if n.startswith("amst-")]
    assert {"amst-alt", "amst-full", "amst-joint"} <= set(amst)
    assert registry.methods.select("amst-*,naive") == sorted(amst) + ["naive"]
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
    fresh = Registry("method", registry.METHOD_GROUP, "amst_bench.methods", "register_method")
    assert "outer-method" in fresh.names()
    assert fresh.get("outer-method").description == "a method from another package"
    assert fresh.origin("outer-method") == "outside-plugin"
    assert fresh.origin("naive") == registry.BUILT_IN
    sys.modules.pop("outside_plugin", None)


def test_built_ins_are_found_from_their_files_without_importing_them():
    """Adding a method is adding a file: no line in pyproject.toml, and listing imports nothing."""
    import subprocess

    code = (
        "import sys; from amst_bench import registry; "
        "names = registry.methods.names() + registry.datasets.names(); "
        "print(','.join(names)); print(registry.methods.describe('naive')); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, description, torch_loaded = out.strip().splitlines()
    expected = {"naive", "amst-alt", "audio", "text", "synthetic", "synthetic-avt", "cremad"}
    assert expected <= set(names.split(","))
    assert description.startswith("joint training")
    assert torch_loaded == "False"


def test_every_method_class_in_methods_is_registered():
    """A concrete Method subclass defined in a methods/ file but never registered is a mistake
    (it would silently never run); bases that others build on say so with `abstract = True`."""
    import importlib
    import inspect
    import pkgutil

    import amst_bench.methods as package
    from amst_bench.train.method import Method

    registered = {registry.methods.get(n) for n in registry.methods.names()}
    unregistered = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Method)
                and cls.__module__ == module.__name__
                and not cls.__dict__.get("abstract", False)
                and cls not in registered
            ):
                unregistered.append(f"{module.__name__}.{cls.__name__}")
    assert unregistered == []


def test_a_module_that_does_not_register_its_name_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "quiet_plugin.py").write_text("X = 1\n")
    dist = tmp_path / "quiet_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: quiet-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[amst_bench.methods]\nquiet = quiet_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh = Registry("method", registry.METHOD_GROUP, "amst_bench.methods", "register_method")
    with pytest.raises(UserError, match="does not register 'quiet'"):
        fresh.get("quiet")
    sys.modules.pop("quiet_plugin", None)


def test_every_registered_method_declares_a_known_family():
    from amst_bench.train.method import METHOD_FAMILIES

    for name in registry.methods.names():
        cls = registry.methods.get(name)
        assert cls.family in METHOD_FAMILIES, f"{name}: family {cls.family!r} not in METHOD_FAMILIES"
