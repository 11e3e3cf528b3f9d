"""Plans and executes a grid of runs (methods × datasets × seeds), idempotently.

A run whose result exists is not redone (unless forced); an interrupted run resumes from its
checkpoint. Datasets are loaded once per grid.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amst_bench import registry
from amst_bench.atomic import atomic_write_text
from amst_bench.data.refs import DataLocations, DatasetRef, dataset_root, make_adapter
from amst_bench.data.tensors import DatasetBundle
from amst_bench.errors import Interrupted, UnsupportedDataset, UserError
from amst_bench.locks import RunLock
from amst_bench.options import build_config
from amst_bench.protocol import Protocol
from amst_bench.report.progress import DecodeProgress
from amst_bench.report.results import ResultStore
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import EpochReporter, SilentReporter, Trainer

_warmed_up: set[tuple] = set()


def warm_up(spec: RunSpec, bundle: DatasetBundle) -> None:
    """One untimed epoch per (device, encoder family) and process, thrown away, so that one-off
    costs (kernel loading, allocator growth, cuDNN set-up) are not charged to whichever method
    happens to run first. Every run seeds itself, so this changes no result."""
    p = spec.protocol  # each speed setting has its own one-off costs (cuDNN autotuning, compilation)
    key = (p.device, p.encoder, p.precision, p.channels_last, p.cudnn_benchmark, p.compile)
    if key in _warmed_up:
        return
    short = dataclasses.replace(spec, protocol=dataclasses.replace(spec.protocol, epochs=1))
    with tempfile.TemporaryDirectory(prefix="amst-bench-warmup-") as scratch:
        Trainer(short, bundle, ResultStore(scratch)).run()
    _warmed_up.add(key)


@dataclass
class GridRequest:
    methods: list[str]
    datasets: list[DatasetRef]
    seeds: list[int]
    protocol: Protocol
    protocol_overrides: dict[str, str] = field(default_factory=dict)
    # method name → {option: raw value}
    method_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # extra variants: (method, {option: value}) run in addition (the ablation grid uses this)
    variants: list[tuple[str, dict[str, str]]] | None = None
    locations: DataLocations = field(default_factory=DataLocations.from_environment)


def plan(request: GridRequest) -> list[RunSpec]:
    """Every run the request names, in method-major order; options are validated here."""
    unknown = set(request.method_overrides) - set(registry.methods.names())
    if unknown:
        raise UserError(f"--set {sorted(unknown)[0]}.…: unknown method {sorted(unknown)[0]!r}")
    # Every --set is checked, also for a method or dataset the grid does not run: a mistyped
    # option is an error wherever it points, never silently ignored.
    for name, options in request.method_overrides.items():
        build_config(registry.methods.get(name), options)
    for name in request.locations.options:
        make_adapter(DatasetRef(name), request.locations)  # resolving an adapter checks its options
    for ref in request.datasets:  # a missing dataset folder is named before anything is written
        adapter = make_adapter(ref, request.locations)
        if adapter.reads_files:
            adapter.root  # noqa: B018  (the property raises UserError naming a missing folder)
    variants = request.variants
    if variants is None:
        variants = [(m, request.method_overrides.get(m, {})) for m in request.methods]
    elif request.method_overrides:
        name, options = sorted(request.method_overrides.items())[0]
        raise UserError(
            f"--set {name}.{sorted(options)[0]}: this grid runs fixed method variants; "
            "method options do not apply to it"
        )
    specs = []
    for method_name, options in variants:
        method_cls = registry.methods.get(method_name)
        config = build_config(method_cls, options)
        for dataset in request.datasets:
            for seed in request.seeds:
                dataset_options = dict(request.locations.options.get(dataset.name, {}))
                specs.append(RunSpec(method_cls, config, dataset.name, seed, request.protocol,
                                     dict(request.protocol_overrides), dataset_options, dataset.path))
    return specs


class DatasetCache:
    """Loads each dataset once per grid."""

    def __init__(self, protocol: Protocol, locations: DataLocations):
        self.protocol = protocol
        self.locations = locations
        self._bundles: dict[DatasetRef, DatasetBundle] = {}

    def get(self, ref: DatasetRef) -> DatasetBundle:
        if ref not in self._bundles:
            adapter = make_adapter(ref, self.locations)
            if adapter.reads_files:  # files on disk: decoded into the cache the first time
                with DecodeProgress(f"preparing {ref}") as progress:
                    bundle = adapter.load(self.protocol, progress)
            else:
                bundle = adapter.load(self.protocol)
            bundle.name = ref.name  # methods see the registered name, never the path
            root = dataset_root(ref, self.locations)
            bundle.source = str(root.resolve()) if root is not None else None
            self._bundles[ref] = bundle
        return self._bundles[ref]


@dataclass
class GridOutcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[RunSpec] = field(default_factory=list)
    unsupported: list[tuple[RunSpec, str]] = field(default_factory=list)
    busy: list[RunSpec] = field(default_factory=list)  # being trained by another process
    # runs that raised (executors other than `local` record them): spec and its failure record
    failed: list[tuple[RunSpec, dict[str, Any]]] = field(default_factory=list)


def execute(
    specs: list[RunSpec],
    store: ResultStore,
    reporter: EpochReporter | None = None,
    force: bool = False,
    checkpoint_every: int = 1,
    strict: bool = True,
    locations: DataLocations | None = None,
    datasets: dict[Protocol, DatasetCache] | None = None,
) -> GridOutcome:
    """Run every spec. A method that cannot run on a dataset raises (strict) or is reported in
    `unsupported` (for `--methods all` grids): it is never replaced by something else. `datasets`
    lets a worker process that runs one spec per call keep its loaded datasets between calls."""
    store.ensure_writable()
    locations = locations or DataLocations.from_environment()
    outcome = GridOutcome()
    reporter = reporter or SilentReporter()
    datasets = {} if datasets is None else datasets
    try:
        _execute_all(specs, store, reporter, force, checkpoint_every, strict, locations, outcome, datasets)
    except KeyboardInterrupt:
        raise Interrupted(interrupt_message(specs, store, outcome)) from None
    return outcome


def interrupt_message(specs: list[RunSpec], store: ResultStore, outcome: GridOutcome) -> str:
    """What an interrupted grid kept and how to go on: finished runs stay, the run in progress
    resumes from its last epoch checkpoint when the same command is run again."""
    done = len(outcome.results)
    parts = [f"interrupted; {done} run(s) finished in this session are kept in {store.root}"]
    finished = {r["run_id"] for r in outcome.results}
    current = next(
        (s for s in specs if s.run_id not in finished and s not in outcome.skipped
         and not store.has_result(s.run_id)),
        None,
    )
    if current is not None:
        meta = next((p for p in store.in_progress() if p.run_id == current.run_id), None)
        if meta is not None:
            parts.append(f"{current.label} is checkpointed at epoch {meta.epochs_done}/{meta.epochs}")
        else:
            parts.append(f"{current.label} had no checkpoint yet and starts over")
    parts.append("run the same command again to resume")
    return "; ".join(parts)


def _execute_all(
    specs, store, reporter, force, checkpoint_every, strict, locations, outcome, datasets
) -> None:
    for spec in specs:
        use_cpu_threads(spec.protocol.cpu_threads)
        if store.has_result(spec.run_id) and not force:
            outcome.skipped.append(spec)
            reporter.skipped(spec)
            continue
        with RunLock(store.root / "locks" / f"{spec.run_id}.lock") as held:
            if not held:
                outcome.busy.append(spec)
                reporter.busy(spec)
                continue
            if store.has_result(spec.run_id) and not force:  # finished by another process meanwhile
                outcome.skipped.append(spec)
                reporter.skipped(spec)
                continue
            if force:
                start_forced(store, spec.run_id)
            cache = datasets.setdefault(spec.protocol, DatasetCache(spec.protocol, locations))
            bundle = cache.get(spec.dataset_ref)
            try:
                warm_up(spec, bundle)
                trainer = Trainer(spec, bundle, store, reporter, checkpoint_every)
                outcome.results.append(trainer.run())
            except UnsupportedDataset as exc:
                if strict:
                    raise
                outcome.unsupported.append((spec, str(exc)))
                reporter.unsupported(spec, str(exc))
            forced_marker(store, spec.run_id).unlink(missing_ok=True)


def use_cpu_threads(count: int) -> None:
    """torch's intra-op CPU threads for the next run (0 leaves torch's default)."""
    import torch

    if count and torch.get_num_threads() != count:
        torch.set_num_threads(count)


def forced_marker(store: ResultStore, run_id: str) -> Path:
    return store.checkpoints_dir / f"{run_id}.forced"


def start_forced(store: ResultStore, run_id: str) -> None:
    """`--force` redoes a run whose result exists. A checkpoint left by an earlier *forced* attempt
    is resumed (it is already the redo); any other checkpoint is older than the result and dropped.
    The stored result stays until the new one replaces it."""
    marker = forced_marker(store, run_id)
    if not marker.exists():
        store.drop_checkpoint(run_id)
        atomic_write_text(marker, "a --force run: its checkpoint is resumed by the next --force\n")
