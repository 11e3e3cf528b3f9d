"""The results store and the result schema: one JSON per (method variant, dataset, seed, config hash).

Layout under the results folder:
  runs/<run_id>.json          finished runs (`RunResult`, the only thing leaderboards read)
  checkpoints/<run_id>.pt     the state of an unfinished run, for resuming; removed when it ends
  checkpoints/<run_id>.json   what that run is and how far it got (`RunProgress`, read by `amst-bench status`)

Schema history: 1 = the first stored shape; 2 adds `seconds_per_epoch.epochs` (how many epochs the
timings average); 3 adds `validation` (the validation split's metrics at the selected epoch) and the
balance fields of each `Evaluation` (Shapley values, utilisation; report/balance.py); 4 adds
`curves.learning_rates` (per optimiser, the rate each epoch trained at, for tracking and figures;
absent from older files, whose readers treat it as unknown) and the optional
`seconds_per_epoch.floor` (the compute floor measured beside a `bench` run; None elsewhere). Version 1 and 2
files are read (a version-1 count comes from its per-epoch curves; neither has a validation copy or
balance metrics); a file of a newer version is refused. Files are written atomically, so a damaged
or foreign file never stops a reader: it is reported in one line and skipped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amst_bench.atomic import atomic_torch_save, atomic_write_json
from amst_bench.errors import UserError
from amst_bench.report.metrics import Evaluation

SCHEMA_VERSION = 4
OLDEST_READABLE = 1


class ResultFormatError(ValueError):
    """A stored file that does not follow the schema (missing field, wrong type, not a result)."""


class NewerSchemaError(ResultFormatError):
    """A result written by a newer amst-bench, in a schema this version cannot read."""


# ---------------------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Timing:
    """Mean seconds per epoch over `epochs` epochs: training only, and the whole epoch with
    validation (+ test when it ran), which is what the paper's Table 3 reports. `floor`: seconds
    per epoch of the plain joint model on batches already on the device, measured by `amst-bench
    bench` in the same process (train/floor.py); None where it was not measured. `train_cpu` and
    `floor_cpu`: the same two in process CPU seconds, on CPU runs only (a shared machine's other
    jobs inflate wall time, hardly CPU time); None elsewhere and in results written before them."""

    train: float
    epoch: float
    epochs: int
    floor: float | None = None
    train_cpu: float | None = None
    floor_cpu: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ResultFormatError(
                f"field 'seconds_per_epoch.epochs': expected at least 1, got {self.epochs}"
            )
        for name in ("floor", "floor_cpu"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ResultFormatError(
                    f"field 'seconds_per_epoch.{name}': expected a positive number, got {value}"
                )


@dataclass(frozen=True)
class Device:
    """Where a run ran. `extra` keeps any further keys of the stored record."""

    type: str
    name: str | None = None
    platform: str | None = None
    processor: str | None = None
    torch_threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.type

    @property
    def is_cpu(self) -> bool:
        return self.type == "cpu"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Device:
        return _build(cls, record, "device")

    def to_json(self) -> dict[str, Any]:
        known = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **{k: v for k, v in known.items() if v is not None}}


@dataclass(frozen=True)
class RunResult:
    """One finished run: what ran, under which protocol, where, and what it measured."""

    run_id: str
    config_hash: str
    method: str
    variant: str
    method_config: dict[str, Any]
    method_resolved: dict[str, Any]
    dataset: str
    dataset_info: dict[str, Any]
    dataset_options: dict[str, Any]
    split: str
    seed: int
    profile: str
    protocol: dict[str, Any]
    overrides: dict[str, Any]
    protocol_label: str
    versions: dict[str, Any]
    device: Device
    determinism: dict[str, Any]
    started: str
    finished: str
    curves: dict[str, Any]
    best_epoch: int
    best_val_acc: float
    test: Evaluation | None
    validation: Evaluation | None  # the validation split at the selected epoch (schema 3)
    seconds_per_epoch: Timing
    peak_memory_bytes: int | None
    embedding_dim: int | None
    text_encoder: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Device):
                value = value.to_json()
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, payload: Any) -> RunResult:
        """Checks every field's presence and type; raises ResultFormatError (NewerSchemaError for
        a newer schema) with the offending field named."""
        if not isinstance(payload, dict):
            raise ResultFormatError(f"not a result: a JSON {_kind(payload)}, not an object")
        version = payload.get("schema")
        if "schema" not in payload:
            raise ResultFormatError("not a result: no 'schema' field")
        if not isinstance(version, int) or isinstance(version, bool) or version < OLDEST_READABLE:
            raise ResultFormatError(f"unknown result schema {version!r}")
        if version > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"result schema {version} is newer than this amst-bench reads "
                f"({OLDEST_READABLE}-{SCHEMA_VERSION}); upgrade amst-bench to include it"
            )
        if version == 1:
            payload = _upgrade_v1(payload)
        if version <= 2:
            payload = _upgrade_v2(payload)
        return _build(cls, payload, "")


@dataclass(frozen=True)
class RunProgress:
    """What an unfinished run is and how far it got (checkpoints/<run_id>.json)."""

    run_id: str
    variant: str
    dataset: str
    seed: int
    protocol_label: str
    epochs_done: int
    epochs: int
    best_val_acc: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, payload: Any) -> RunProgress:
        if not isinstance(payload, dict):
            raise ResultFormatError(f"not a progress record: a JSON {_kind(payload)}, not an object")
        return _build(cls, payload, "")


def _upgrade_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 -> 2: the number of epochs the timings average, from the per-epoch curve; the
    fields schema 1 gained during its life (embedding_dim, text_encoder) are None where absent."""
    payload = {"embedding_dim": None, "text_encoder": None, **payload}
    secs, curves = payload.get("seconds_per_epoch"), payload.get("curves")
    if isinstance(secs, dict) and "epochs" not in secs:
        per_epoch = curves.get("epoch_seconds") if isinstance(curves, dict) else None
        if not isinstance(per_epoch, list) or not per_epoch:
            raise ResultFormatError("field 'curves.epoch_seconds': missing, so the timed epochs are unknown")
        payload["seconds_per_epoch"] = {**secs, "epochs": len(per_epoch)}
    return payload


def _upgrade_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 -> 3: no validation copy was kept (its `Evaluation`s lack the balance fields, which
    default to empty)."""
    return {"validation": None, **payload}


# ---------------------------------------------------------------------------------------------- checks


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {dict: "object", list: "array", str: "string", float: "number", int: "integer"}.get(
            tp, tp.__name__
        )
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return _type_name(origin) if origin is not None else str(tp)


def _mismatch(where: str, tp: Any, value: Any) -> ResultFormatError:
    return ResultFormatError(f"field '{where}': expected {_type_name(tp)}, got {_kind(value)}")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """`value` checked against the annotation `tp` (dataclasses built recursively)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _mismatch(where, tp, value)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ResultFormatError:
                if len(args) == 2:  # X | None: the inner message names the inner field
                    raise
        raise _mismatch(where, tp, value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _mismatch(where, dict, value)
        return _build(tp, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise _mismatch(where, tp, value)
        _, value_tp = typing.get_args(tp)
        return {k: _convert(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise _mismatch(where, tp, value)
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _mismatch(where, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(where, tp, value)
    if tp in (str, bool):
        if type(value) is tp:
            return value
        raise _mismatch(where, tp, value)
    raise TypeError(f"{where}: unsupported annotation {tp!r}")  # a schema bug, not a file problem


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """An instance of dataclass `cls` from a JSON object: required fields present, every type right.
    Unknown keys go to an `extra` field when the class has one, and are ignored otherwise."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name == "extra" and "extra" not in data:
            kwargs["extra"] = {k: v for k, v in data.items() if k not in names}
        elif f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ResultFormatError(f"field '{path}': missing")
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Skipped:
    """A file in the store that could not be read, and why (one line for the user)."""

    path: Path
    reason: str
    newer: bool = False

    def line(self) -> str:
        verb = "refused" if self.newer else "skipped"
        return f"amst-bench: warning: {self.path}: {verb}: {self.reason}"


def warn_on_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _read(path: Path, parse: Callable[[Any], Any]) -> Any:
    """Parsed content of a JSON file, or a Skipped naming the file and the problem."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, not JSON
        return Skipped(path, f"not readable as JSON ({type(exc).__name__}: {exc})".splitlines()[0])
    try:
        return parse(payload)
    except NewerSchemaError as exc:
        return Skipped(path, str(exc), newer=True)
    except ResultFormatError as exc:
        return Skipped(path, str(exc))


class ResultStore:
    """Finished results and in-flight checkpoints under one root folder."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def ensure_writable(self) -> None:
        """Fail early, with the folder named, when results cannot be written there."""
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.runs_dir, delete=True)
            probe.close()
        except OSError as exc:
            raise UserError(f"--results-dir {self.root}: not writable ({exc.strerror or exc})") from None

    def result_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.checkpoints_dir / f"{run_id}.pt"

    def progress_path(self, run_id: str) -> Path:
        return self.checkpoints_dir / f"{run_id}.json"

    def has_result(self, run_id: str) -> bool:
        """A finished result is stored: a readable one, or one of a newer schema (never redone
        over). A damaged or hand-broken file, which leaderboards skip, does not count: the run is
        done again and its result replaces the file."""
        path = self.result_path(run_id)
        if not path.is_file():
            return False
        read = _read(path, RunResult.from_json)
        return not isinstance(read, Skipped) or read.newer

    def save_result(self, result: RunResult) -> Path:
        path = self.result_path(result.run_id)
        atomic_write_json(path, result.to_json())
        return path

    def save_checkpoint(
        self, run_id: str, state: dict[str, Any], progress: RunProgress | None = None
    ) -> None:
        atomic_torch_save(self.checkpoint_path(run_id), state)
        if progress is not None:
            atomic_write_json(self.progress_path(run_id), progress.to_json())

    def load_checkpoint(self, run_id: str) -> dict[str, Any] | None:
        path = self.checkpoint_path(run_id)
        if not path.is_file():
            return None
        import torch  # only here, so reading results never loads it

        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            # A checkpoint is only ever replaced atomically, so this is foreign damage: start over
            # rather than trust it, and keep the file for inspection.
            self.discard_checkpoint(run_id, f"not a readable checkpoint ({type(exc).__name__})", ".corrupt")
            return None

    def discard_checkpoint(
        self, run_id: str, reason: str, suffix: str, warn: Callable[[str], None] = warn_on_stderr
    ) -> None:
        """Set aside a checkpoint that cannot be resumed (renamed to `<run_id>.pt<suffix>`, its
        progress record dropped) and say so in one line: the run starts over."""
        path = self.checkpoint_path(run_id)
        kept = path.with_name(path.name + suffix)
        path.replace(kept)
        self.progress_path(run_id).unlink(missing_ok=True)
        warn(f"amst-bench: warning: {path}: {reason}; kept as {kept.name}, the run starts over")

    def drop_checkpoint(self, run_id: str) -> None:
        self.checkpoint_path(run_id).unlink(missing_ok=True)
        self.progress_path(run_id).unlink(missing_ok=True)

    def scan_results(self) -> tuple[list[RunResult], list[Skipped]]:
        """Every readable finished result, and the files that are not (damaged, foreign, newer)."""
        return self._scan(self.runs_dir, RunResult.from_json)

    def scan_progress(self) -> tuple[list[RunProgress], list[Skipped]]:
        """The progress records of interrupted (or running) runs, and the unreadable ones."""
        return self._scan(self.checkpoints_dir, RunProgress.from_json)

    def load_results(self, warn: Callable[[str], None] = warn_on_stderr) -> list[RunResult]:
        """Every readable finished result; each file that is not is reported in one line and skipped."""
        results, skipped = self.scan_results()
        for item in skipped:
            warn(item.line())
        return results

    def in_progress(self, warn: Callable[[str], None] = warn_on_stderr) -> list[RunProgress]:
        """Progress records of unfinished runs; unreadable ones are reported in one line and skipped."""
        records, skipped = self.scan_progress()
        for item in skipped:
            warn(item.line())
        return records

    @staticmethod
    def _scan(folder: Path, parse: Callable[[Any], Any]) -> tuple[list[Any], list[Skipped]]:
        if not folder.is_dir():
            return [], []
        good, bad = [], []
        for path in sorted(folder.glob("*.json")):
            item = _read(path, parse)
            (bad if isinstance(item, Skipped) else good).append(item)
        return good, bad
