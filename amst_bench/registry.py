"""Method and dataset registries (timm-style): a decorator registers a class under a name.

Plugins, built-in ones included, are found through the entry-point groups `amst_bench.methods`
and `amst_bench.datasets`; loading an entry point imports its module (whose decorators register)
or returns a class that is registered under the entry point's name. The engine never imports a
plugin by name.
"""

from __future__ import annotations

import fnmatch
from importlib.metadata import entry_points
from typing import Any

from amst_bench.errors import UserError

METHOD_GROUP = "amst_bench.methods"
DATASET_GROUP = "amst_bench.datasets"


class Registry:
    """A plain name → class dict with wildcard listing and one clear error for unknown names."""

    def __init__(self, kind: str, group: str):
        self.kind = kind
        self.group = group
        self._items: dict[str, type] = {}
        self._loaded = False

    def register(self, name: str):
        def decorator(cls: type) -> type:
            existing = self._items.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by {existing!r}")
            cls.name = name
            self._items[name] = cls
            return cls

        return decorator

    def load_plugins(self) -> None:
        """Import every entry point of this registry's group once."""
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken outside plugin must not hide the others
                raise UserError(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
            if isinstance(obj, type) and ep.name not in self._items:
                self.register(ep.name)(obj)

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._items)

    def get(self, name: str) -> Any:
        self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise UserError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def select(self, spec: str) -> list[str]:
        """Names matching a comma list of names or wildcards ('all', 'amst-*,naive'), in order."""
        self.load_plugins()
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
                self.get(part)
                matches = [part]
            chosen.extend(m for m in matches if m not in chosen)
        if not chosen:
            raise UserError(f"no {self.kind} given")
        return chosen


methods = Registry("method", METHOD_GROUP)
datasets = Registry("dataset", DATASET_GROUP)

register_method = methods.register
register_dataset = datasets.register
