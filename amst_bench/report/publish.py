"""Publishing: chosen finished runs of a user's results folder copied into the repository's curated
tree (`published/runs/`), the only source of the committed `leaderboards/`.

A run's code version is the amst-bench package version (`versions.amst_bench`) and its method's
`Method.version` (`versions.method_version`; results written before it was recorded get it back
from their config hash, which includes a version above 1, train/runspec.py). Runs under one
protocol label must share one package version, and runs of one method under it one method
version, so no table mixes code versions. Nothing published is removed or overwritten unless
asked (`replace`); every file is written atomically.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amst_bench.atomic import atomic_write_bytes
from amst_bench.errors import UserError
from amst_bench.protocol import stable_hash
from amst_bench.report.results import ResultStore, RunResult, Skipped, _read, warn_on_stderr

HIGHEST_INFERRED_VERSION = 50  # method versions tried when recovering one from a config hash


@dataclass(frozen=True)
class CodeVersion:
    """The code a run ran: the amst-bench package version and the method's `version` (None: unknown)."""

    package: str | None
    method: int | None

    def describe(self, method: str) -> str:
        version = "?" if self.method is None else self.method
        return f"amst-bench {self.package or '?'} + {method} v{version}"


def method_version(result: RunResult) -> int | None:
    """The method's `version` when the run ran: recorded, or recovered from the config hash."""
    recorded = result.versions.get("method_version")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    protocol = {k: v for k, v in result.protocol.items() if k not in ("seeds", "device", "cpu_threads")}
    identity = {
        "method": result.method,
        "method_config": result.method_config,
        "dataset": result.dataset,
        "dataset_options": result.dataset_options,
        "protocol": protocol,
    }
    if stable_hash(identity) == result.config_hash:
        return 1
    for version in range(2, HIGHEST_INFERRED_VERSION + 1):
        if stable_hash({**identity, "method_version": version}) == result.config_hash:
            return version
    return None


def code_version(result: RunResult) -> CodeVersion:
    return CodeVersion(result.versions.get("amst_bench"), method_version(result))


@dataclass(frozen=True)
class Stored:
    """One readable result file."""

    path: Path
    result: RunResult

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


def scan(store: ResultStore, warn: Callable[[str], None] = warn_on_stderr) -> list[Stored]:
    """Every readable result file of a store with its path; unreadable ones reported and skipped."""
    out = []
    if store.runs_dir.is_dir():
        for path in sorted(store.runs_dir.glob("*.json")):
            item = _read(path, RunResult.from_json)
            if isinstance(item, Skipped):
                warn(item.line())
            else:
                out.append(Stored(path, item))
    return out


def matches(result: RunResult, pattern: str) -> bool:
    """`METHOD[/DATASET[/LABEL]]` with shell wildcards in each part, or a run id."""
    method, dataset, label = (pattern.split("/", 2) + ["*", "*"])[:3]
    if "/" not in pattern and fnmatch.fnmatchcase(result.run_id, pattern):
        return True
    return all(fnmatch.fnmatchcase(value, part) for value, part in
               ((result.method, method), (result.dataset, dataset), (result.protocol_label, label)))


def select(runs: list[Stored], patterns: list[str] | None, source: Path) -> list[Stored]:
    """The runs matching any pattern (all when none is given); a pattern matching none is an error.
    Of two files holding one run id, the later finished is taken."""
    if not runs:
        raise UserError(f"--from {source}: no finished runs in {source / 'runs'}")
    chosen = list(runs)
    if patterns:
        for pattern in patterns:
            if not any(matches(s.result, pattern) for s in runs):
                raise UserError(f"--runs {pattern}: matches no finished run in {source / 'runs'}")
        chosen = [s for s in runs if any(matches(s.result, p) for p in patterns)]
    latest: dict[str, Stored] = {}
    for s in sorted(chosen, key=lambda s: s.result.finished):
        latest[s.result.run_id] = s
    return sorted(latest.values(), key=lambda s: s.result.run_id)


def _versions_by_label(runs: list[Stored]) -> dict[str, tuple[set, dict[str, set]]]:
    """label -> (package versions, method -> method versions) of the given runs."""
    out: dict[str, tuple[set, dict[str, set]]] = {}
    for s in runs:
        version = code_version(s.result)
        packages, methods = out.setdefault(s.result.protocol_label, (set(), {}))
        packages.add(version.package)
        methods.setdefault(s.result.method, set()).add(version.method)
    return out


def check_one_version(runs: list[Stored]) -> None:
    """Refuse (one line) when runs sharing a protocol label come from different code versions."""
    for label, (packages, methods) in sorted(_versions_by_label(runs).items()):
        if len(packages) > 1:
            found = ", ".join(sorted(str(p) for p in packages))
            raise UserError(
                f"publish: the runs under protocol '{label}' come from different amst-bench versions "
                f"({found}); publish one code version per protocol (choose with --runs)"
            )
        for method, versions in sorted(methods.items()):
            if len(versions) > 1:
                found = ", ".join(sorted(f"v{v if v is not None else '?'}" for v in versions))
                raise UserError(
                    f"publish: the {method} runs under protocol '{label}' come from different method "
                    f"versions ({found}); publish one code version per protocol (choose with --runs)"
                )


@dataclass
class Plan:
    """What publishing does: files to copy (new or replacing), published files to remove."""

    copy: list[Stored] = field(default_factory=list)
    unchanged: list[Stored] = field(default_factory=list)
    replaced: list[Stored] = field(default_factory=list)  # published runs given a new result
    remove: list[Stored] = field(default_factory=list)  # published runs of another code version


def plan(chosen: list[Stored], published: list[Stored], replace: bool) -> Plan:
    """Compare the chosen runs with the published tree; refuse, unless `replace`, to overwrite a
    published result or to leave published runs of another code version beside the new ones."""
    check_one_version(chosen)
    out = Plan()
    by_id = {s.result.run_id: s for s in published}
    for s in chosen:
        old = by_id.get(s.result.run_id)
        if old is None:
            out.copy.append(s)
        elif old.data == s.data:
            out.unchanged.append(s)
        elif replace:
            out.copy.append(s)
            out.replaced.append(old)
            if old.path.name != f"{s.result.run_id}.json":  # a file named otherwise: not overwritten
                out.remove.append(old)
        else:
            raise UserError(
                f"publish: {old.path} holds another result of run {s.result.run_id}; "
                "add --replace to publish the new one in its place"
            )
    incoming = _versions_by_label(chosen)
    chosen_ids = {s.result.run_id for s in chosen}
    for old in published:
        label, method = old.result.protocol_label, old.result.method
        if old.result.run_id in chosen_ids or label not in incoming:
            continue
        version = code_version(old.result)
        packages, methods = incoming[label]
        if version.package in packages and version.method in methods.get(method, {version.method}):
            continue
        if not replace:
            new = next(s.result for s in chosen if s.result.protocol_label == label
                       and (version.package not in packages or s.result.method == method))
            raise UserError(
                f"publish: {old.path} is published under protocol '{label}' from "
                f"{version.describe(method)}, the new runs from {code_version(new).describe(new.method)}; "
                "add --replace to remove the published runs of the other version"
            )
        out.remove.append(old)
    return out


def apply(plan_: Plan, target: ResultStore) -> None:
    """Copy (atomically, the files' own bytes), then remove what the plan replaces."""
    for s in plan_.copy:
        atomic_write_bytes(target.result_path(s.result.run_id), s.data)
    for old in plan_.remove:
        old.path.unlink(missing_ok=True)
