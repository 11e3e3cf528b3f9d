"""Typed `KEY=VALUE` options from the command line: protocol overrides and method options.

Values are parsed to the type the config field declares, so `--set ogm-ge.alpha=0.5` becomes a
float even when the default is None, and every mistake names the flag it came from.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from amst_bench.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(raw: str, kind: type, where: str) -> Any:
    """`raw` as a bool, int, float or str; a bad value raises UserError naming `--set where`."""
    if kind is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise UserError(f"--set {where}: expected true/false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise UserError(f"--set {where}: expected {expected}, got {raw!r}") from None
    return raw


def _kind_from_annotation(annotation: Any) -> type:
    """The scalar type named in a field annotation (a string under `from __future__ import
    annotations`): for 'dict[str, float] | None' that is float, the value type."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if "dict[" in text:
        text = text.split("dict[", 1)[1].split(",", 1)[1]
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if name in text.split("]")[0]:
            return kind
    return str


def field_kind(field: dataclasses.Field, current: Any) -> type:
    if current is not None and not isinstance(current, dict):
        return type(current)
    return _kind_from_annotation(field.type)


def build_config(method_cls: type, overrides: dict[str, str]) -> Any:
    """The method's config dataclass with `key=value` overrides applied ('skip.audio=3' sets one
    entry of a mapping field). Unknown keys and bad values raise UserError naming the flag."""
    config = method_cls.Config()
    fields = {f.name: f for f in dataclasses.fields(config)}
    for key, raw in overrides.items():
        where = f"{method_cls.name}.{key}"
        top, _, sub = key.partition(".")
        if top not in fields:
            known = ", ".join(fields) or "none"
            raise UserError(f"--set {where}: {method_cls.name} has no option {top!r} (options: {known})")
        field = fields[top]
        current = getattr(config, top)
        if sub:
            if "dict[" not in str(field.type):
                raise UserError(f"--set {where}: option {top!r} is not a per-modality mapping")
            value: Any = dict(current or {}) | {sub: parse_value(raw, field_kind(field, current), where)}
        else:
            value = parse_value(raw, field_kind(field, current), where)
            choices = field.metadata.get("choices")
            if choices and value not in choices:
                raise UserError(f"--set {where}: expected one of {', '.join(choices)}, got {raw!r}")
        config = dataclasses.replace(config, **{top: value})
    return config


def non_default_options(config: Any) -> dict[str, Any]:
    """Options that differ from the method's defaults (used to label variants)."""
    default = type(config)()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    }
