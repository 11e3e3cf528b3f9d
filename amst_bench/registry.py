"""Method and dataset registries (timm-style): a decorator registers a class under a name.

Built-in plugins are the modules of `amst_bench.methods` and `amst_bench.datasets`: adding one is
adding a file, nothing to declare. Their names are read from the decorator calls in the source
(without importing torch), so `amst-bench list` starts fast; a plugin's module is imported the
first time its class is needed, and its decorator registers it. Outside packages register
through the entry-point groups `amst_bench.methods` / `amst_bench.datasets` (a module, whose
decorators register, or a class, registered under the entry point's name). The engine never
imports a plugin by name.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from amst_bench.errors import UserError

METHOD_GROUP = "amst_bench.methods"
DATASET_GROUP = "amst_bench.datasets"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class PluginSource:
    """Where a registered name comes from: the module that registers it and who ships it."""

    module: str
    origin: str  # "built-in", or the distribution that declared the entry point
    attribute: str = ""  # an entry point naming a class (`module:Class`)
    description: str = ""  # read from the source where it is a plain string
    # (attribute, value) for each plain-string assignment in the registered class's own body
    strings: tuple[tuple[str, str], ...] = ()


def declared_plugins(package: str, decorator: str) -> dict[str, PluginSource]:
    """Names registered by `@decorator("name")` (or `decorator("name")(Class)`) in the modules
    of `package`, read from their source: nothing is imported but the package itself."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return {}
    found: dict[str, PluginSource] = {}
    for folder in spec.submodule_search_locations:
        for path in sorted(Path(folder).glob("*.py")):
            if path.name.startswith("_"):
                continue
            module = f"{package}.{path.stem}"
            for name, strings in _registrations(ast.parse(path.read_text()), decorator):
                found[name] = PluginSource(module, BUILT_IN, description=strings.get("description", ""),
                                           strings=tuple(sorted(strings.items())))
    return found


def _class_strings(node: ast.ClassDef) -> dict[str, str]:
    """The plain-string assignments of a class body (`x = "..."`, `x: T = "..."`)."""
    out = {}
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(
            stmt, ast.AnnAssign) else []
        value = getattr(stmt, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out |= {t.id: value.value for t in targets if isinstance(t, ast.Name)}
    return out


def _registrations(tree: ast.Module, decorator: str) -> list[tuple[str, dict[str, str]]]:
    def registered_name(call: ast.AST) -> str | None:
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == decorator and call.args:
            arg = call.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                return arg.value
        return None

    strings = {node.name: _class_strings(node) for node in tree.body if isinstance(node, ast.ClassDef)}
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for dec in node.decorator_list:
                if (name := registered_name(dec)) is not None:
                    out.append((name, strings[node.name]))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            call = node.value  # decorator("name")(Class)
            if (name := registered_name(call.func)) is not None:
                cls = call.args[0].id if call.args and isinstance(call.args[0], ast.Name) else ""
                out.append((name, strings.get(cls, {})))
    return out


class Registry:
    """A plain name → class dict with wildcard listing and one clear error for unknown names."""

    def __init__(self, kind: str, group: str, package: str, decorator: str):
        self.kind = kind
        self.group = group
        self.package = package
        self.decorator = decorator
        self._items: dict[str, type] = {}
        self._sources: dict[str, PluginSource] | None = None

    def register(self, name: str):
        def decorator(cls: type) -> type:
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing!r}")
            cls.name = name
            self._items[name] = cls
            return cls

        return decorator

    def sources(self) -> dict[str, PluginSource]:
        """Every known name and where it comes from (built-ins first; nothing imported)."""
        if self._sources is None:
            sources = declared_plugins(self.package, self.decorator)
            for ep in entry_points(group=self.group):
                module, _, attribute = ep.value.partition(":")
                if module.split(".")[0] == "amst_bench" or ep.name in sources:
                    continue  # a built-in (older installs declared them as entry points too)
                origin = ep.dist.name if ep.dist is not None else "entry point"
                sources[ep.name] = PluginSource(module.strip(), origin, attribute.strip())
            self._sources = sources
        return self._sources

    def names(self) -> list[str]:
        return sorted(set(self.sources()) | set(self._items))

    def get(self, name: str) -> Any:
        if name not in self._items:
            source = self.sources().get(name)
            if source is None:
                raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
            self._load(name, source)
        return self._items[name]

    def _load(self, name: str, source: PluginSource) -> None:
        try:
            module = importlib.import_module(source.module)
            obj = getattr(module, source.attribute) if source.attribute else None
        except Exception as exc:  # a broken outside plugin must not look like our bug
            raise UserError(f"{self.kind} plugin {name!r} ({source.module}) failed to load: {exc}") from exc
        if isinstance(obj, type) and name not in self._items:
            self.register(name)(obj)
        if name not in self._items:
            raise UserError(f"{self.kind} plugin module {source.module} does not register {name!r}")

    def describe(self, name: str) -> str:
        """A one-line description: from the source when it is a plain string, else the class."""
        source = self.sources().get(name)
        if source is not None and source.description:
            return source.description
        return getattr(self.get(name), "description", "")

    def declared(self, name: str, attribute: str) -> str | None:
        """A class attribute of a built-in as its registered class's own body sets it to a plain
        string, read from the source (nothing imported); None where the source does not say (not
        set in that body, not a plain string, an outside plugin, an unknown name)."""
        source = self.sources().get(name)
        return dict(source.strings).get(attribute) if source is not None else None

    def origin(self, name: str) -> str:
        source = self.sources().get(name)
        return source.origin if source is not None else "registered at run time"

    def select(self, spec: str) -> list[str]:
        """Names matching a comma list of names or wildcards ('all', 'amst-*,naive'), in order."""
        chosen: list[str] = []
        for part in [p.strip() for p in spec.split(",")]:
            if not part:
                continue
            if part == "all":
                matches = self.names()
            elif any(ch in part for ch in "*?["):
                matches = fnmatch.filter(self.names(), part)
                if not matches:
                    raise UserError(f"no {self.kind} matches {part!r}; known: {', '.join(self.names())}")
            else:
                if part not in self.names():
                    raise UserError(f"unknown {self.kind} {part!r}; known: {', '.join(self.names())}")
                matches = [part]
            chosen.extend(m for m in matches if m not in chosen)
        if not chosen:
            raise UserError(f"no {self.kind} given")
        return chosen


methods = Registry("method", METHOD_GROUP, "amst_bench.methods", "register_method")
datasets = Registry("dataset", DATASET_GROUP, "amst_bench.datasets", "register_dataset")

register_method = methods.register
register_dataset = datasets.register
