"""One option system: protocol fields, method options and dataset options are typed dataclasses
built from `--set KEY=VALUE` strings by the same function.

A field declares what may be set and how in its metadata (`option(...)`): the allowed `choices`,
a `minimum`, and whether it may be overridden at all (protocol rules may not). Values are parsed
to the field's type, so `--set ogm-ge.alpha=0.5` is a float even when the default is None, and
every mistake is one line naming the flag it came from.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import MISSING
from typing import Any

from amst_bench.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def option(
    default: Any = MISSING,
    *,
    default_factory: Any = MISSING,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    overridable: bool = True,
    help: str = "",
) -> Any:
    """A dataclass field with the option metadata `build_options` reads."""
    metadata = {"choices": choices, "minimum": minimum, "overridable": overridable, "help": help}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_value(raw: str, kind: type, where: str) -> Any:
    """`raw` as a bool, int, float or str; a bad value raises UserError naming `--set where`."""
    raw = raw.strip()
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


def _resolved_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be evaluated: fall back to the raw text
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _scalar_kind(annotation: Any) -> type:
    """The scalar type a field holds: `int | None` → int, `dict[str, float]` → float."""
    if isinstance(annotation, type) and annotation in (bool, int, float, str):
        return annotation
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (dict, Mapping) or (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        return _scalar_kind(args[1]) if len(args) == 2 else str
    if args:
        return _scalar_kind(args[0])
    text = str(annotation)
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if name in text:
            return kind
    return str


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return True
    return any(_is_mapping(a) for a in typing.get_args(annotation)) if origin is not None else "dict[" in str(
        annotation
    )


def _check(field: dataclasses.Field, value: Any, raw: str, where: str) -> None:
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise UserError(f"--set {where}: expected one of {', '.join(map(str, choices))}, got {raw!r}")
    minimum = field.metadata.get("minimum")
    if minimum is not None and value is not None and value < minimum:
        raise UserError(f"--set {where}: expected a value ≥ {minimum}, got {raw!r}")


def option_names(cls_or_obj: Any) -> list[str]:
    """The settable keys of an options dataclass (nested dataclasses as `outer.inner`)."""
    names = []
    for f in dataclasses.fields(cls_or_obj):
        if not f.metadata.get("overridable", True):
            continue
        kind = _resolved_types(cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj))[f.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            names.extend(f"{f.name}.{n}" for n in option_names(kind))
        else:
            names.append(f.name)
    return names


def build_options(base: Any, overrides: Mapping[str, str], owner: str = "") -> Any:
    """`base` (an options dataclass, or its class for the defaults) with `key=value` overrides
    applied. `owner` prefixes keys in messages (`ogm-ge` → `--set ogm-ge.alpha`). A key may name a
    nested dataclass field (`optimizer.lr`) or one entry of a mapping field (`skip.audio`).
    Unknown keys, rules and bad values raise UserError naming the flag."""
    obj = base() if isinstance(base, type) else base
    types = _resolved_types(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    prefix = f"{owner}." if owner else ""
    for key, raw in overrides.items():
        where = f"{prefix}{key}"
        top, _, sub = key.partition(".")
        field = fields.get(top)
        if field is None or not field.metadata.get("overridable", True):
            settable = ", ".join(option_names(obj)) or "none"
            what = "has no option" if field is None else "does not let you override"
            subject = owner or "the protocol"
            raise UserError(f"--set {where}: {subject} {what} {top!r} (settable: {settable})")
        kind = types[top]
        current = getattr(obj, top)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            if not sub:
                raise UserError(f"--set {where}: name one of its fields ({', '.join(option_names(kind))})")
            value: Any = build_options(current, {sub: raw}, f"{prefix}{top}")
        elif sub:
            if not _is_mapping(kind):
                raise UserError(f"--set {where}: option {top!r} is not a per-modality mapping")
            entry = parse_value(raw, _scalar_kind(kind), where)
            _check(field, entry, raw, where)
            value = dict(current or {}) | {sub: entry}
        else:
            if _is_mapping(kind):
                raise UserError(f"--set {where}: {top!r} is a mapping; set one entry ({where}.KEY=VALUE)")
            value = parse_value(raw, _scalar_kind(kind), where)
            _check(field, value, raw, where)
        obj = dataclasses.replace(obj, **{top: value})
    return obj


def build_config(method_cls: type, overrides: Mapping[str, str]) -> Any:
    """A method's options: its `Config` dataclass with `--set METHOD.KEY=VALUE` applied."""
    return build_options(method_cls.Config, overrides, method_cls.name)


def non_default_options(config: Any) -> dict[str, Any]:
    """Options that differ from the dataclass defaults (used to label variants)."""
    default = type(config)()
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    }


def variant_name(method_name: str, changed: Mapping[str, Any]) -> str:
    """'amst-alt' when no option differs from its default, 'amst-alt[skip_enabled=False]' when some do:
    the one spelling of a method variant, for run records and leaderboard rows alike."""
    if not changed:
        return method_name
    parts = []
    for key, value in sorted(changed.items()):
        if isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in sorted(value.items()))
        parts.append(f"{key}={value}")
    return f"{method_name}[{';'.join(parts)}]"
