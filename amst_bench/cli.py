"""The `amst-bench` command line (typer). User mistakes print one line and exit 2, no traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import itertools
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from amst_bench import registry
from amst_bench.data.refs import DataLocations, make_adapter, select_datasets
from amst_bench.errors import Interrupted, UserError
from amst_bench.options import option_names
from amst_bench.protocol import PROFILES, Protocol, apply_overrides, get_profile
from amst_bench.report.reference import ablation_variants

# Only typer and small modules are imported here, so `list`, `status` and `--help` start in well
# under a second; commands that train import torch (through the runner) when they run.

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Benchmark modality-imbalance methods under one fixed protocol.",
)

ABLATION_VARIANTS = ablation_variants()  # declared once, with ablation.md's rows (report.reference)

MethodsOpt = Annotated[str, typer.Option("--methods", "-m", help="comma list, wildcards, or 'all'")]
DatasetsOpt = Annotated[str, typer.Option("--datasets", "-d", help="comma list of dataset names")]
SeedsOpt = Annotated[
    str | None, typer.Option("--seeds", help="comma list of integers (default: the profile's)")
]
PROFILE_HELP = "; ".join(
    f"{name}: {p.epochs} epochs, {p.encoder} encoders{', CPU' if p.device == 'cpu' else ''}"
    for name, p in PROFILES.items()
)
ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help=f"{' | '.join(PROFILES)} ({PROFILE_HELP})")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="override: a protocol field (epochs=5) or a method option (amst-alt.skip.audio=3); repeatable",
    ),
]
RESULTS_ENV = "AMST_BENCH_RESULTS"
USER_RESULTS = Path("amst-results")  # a user's own runs (git-ignored); --results-dir, $AMST_BENCH_RESULTS
PUBLISHED = Path("published")  # the repository's curated runs, behind the committed leaderboards/
PUBLISHED_BOARDS = Path("leaderboards")
ResultsOpt = Annotated[
    Path | None,
    typer.Option(
        "--results-dir", help=f"where run results are stored (${RESULTS_ENV}, default ./{USER_RESULTS})"
    ),
]
BoardOpt = Annotated[
    Path | None,
    typer.Option("--leaderboard-dir", help="where Markdown tables go (default <results dir>/leaderboards)"),
]


def results_root(given: Path | None) -> Path:
    """--results-dir, else $AMST_BENCH_RESULTS, else ./amst-results."""
    return given if given is not None else Path(os.environ.get(RESULTS_ENV) or USER_RESULTS)


def boards_dir(given: Path | None, results: Path) -> Path:
    """--leaderboard-dir, else the results folder's leaderboards/."""
    return given if given is not None else results / "leaderboards"
DataRootOpt = Annotated[
    Path | None, typer.Option("--data-root", help="folder holding one folder per dataset ($AMST_BENCH_DATA)")
]
CacheOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="preprocessing cache ($AMST_BENCH_CACHE, default ./cache)")
]
TextModelOpt = Annotated[
    Path | None,
    typer.Option("--text-model", help="local RoBERTa folder (tokenizer, config.json, optional weights)"),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="redo (re-measure) runs already stored")]
# Executors (amst_bench/executors): who trains the grid's runs; `run` takes these.
ExecutorOpt = Annotated[
    str,
    typer.Option("--executor", help="local (in this process) | local:N (N worker processes) | slurm | ray"),
]
WorkersPerGpuOpt = Annotated[
    int, typer.Option("--workers-per-gpu", help="local:N on CUDA: workers per GPU (worker i: GPU i//K)")
]
MaxRetriesOpt = Annotated[
    int, typer.Option("--max-retries", help="local:N, ray, slurm: times a run whose worker died is retried")
]
SlurmPartitionOpt = Annotated[str | None, typer.Option("--slurm-partition", help="slurm: the partition")]
SlurmClusterOpt = Annotated[
    str,
    typer.Option("--slurm-cluster", help="slurm: submitit's cluster, slurm or local (subprocesses here)"),
]
GpusPerTaskOpt = Annotated[int, typer.Option("--gpus-per-task", help="slurm, ray: GPUs per run")]
TimeLimitOpt = Annotated[int, typer.Option("--time-limit", help="slurm: minutes per job (then requeued)")]
CpusPerTaskOpt = Annotated[int, typer.Option("--cpus-per-task", help="slurm, ray: CPUs per run")]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="ray: auto | HOST:PORT (default: a Ray started for the grid)"),
]
TensorBoardOpt = Annotated[
    bool,
    typer.Option("--tensorboard", help="log runs to <results dir>/tensorboard/<run id>/ ([tensorboard])"),
]
WandbOpt = Annotated[
    bool,
    typer.Option("--wandb", help="log runs to W&B, offline, in <results dir>/wandb/ ([wandb])"),
]


@dataclass
class DataOptions:
    """Where data, caches and the text model are, and what is overridden: every command that
    reads a dataset takes these."""

    profile: ProfileOpt = "paper"
    sets: SetOpt = None
    data_root: DataRootOpt = None
    cache_dir: CacheOpt = None
    text_model: TextModelOpt = None


@dataclass
class GridOptions(DataOptions):
    """What every command that trains a grid takes: the data options and the grid's own."""

    datasets: DatasetsOpt = "synthetic"
    seeds: SeedsOpt = None
    results_dir: ResultsOpt = None
    leaderboard_dir: BoardOpt = None
    force: ForceOpt = False
    tensorboard: TensorBoardOpt = False
    wandb: WandbOpt = False

    ORDER = ("datasets", "seeds", "profile", "sets", "results_dir", "leaderboard_dir", "data_root",
             "cache_dir", "text_model", "force", "tensorboard", "wandb")

    @property
    def results(self) -> Path:
        return results_root(self.results_dir)

    @property
    def boards(self) -> Path:
        return boards_dir(self.leaderboard_dir, self.results)


# command-specific switches shown after the shared options
FLAGS_LAST = {"leaderboard", "allow_cpu", "device", "steps", "speeds"}


def with_options(group: type):
    """Give a command the parameters of an options dataclass (declared once, shared by every
    command that takes them); the command receives them as one `opts` argument."""

    def decorate(func):
        own = [p for p in inspect.signature(func).parameters.values() if p.name != "opts"]
        hints = typing_hints(func)
        fields = {f.name: f for f in dataclasses.fields(group)}
        order = getattr(group, "ORDER", tuple(fields))
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=fields[name].default,
                              annotation=hints_of(group)[name])
            for name in order
        ]
        own = [p for p in own if p.name not in fields]

        @functools.wraps(func)
        def command(**kwargs: Any):
            values = {f.name: kwargs.pop(f.name) for f in dataclasses.fields(group) if f.name in kwargs}
            return func(opts=group(**values), **kwargs)

        own = [p.replace(annotation=hints.get(p.name, p.annotation), kind=inspect.Parameter.KEYWORD_ONLY)
               for p in own]
        flags = [p for p in own if p.name in FLAGS_LAST]
        params = [p for p in own if p.name not in FLAGS_LAST] + shared + flags
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__
        return command

    return decorate


def typing_hints(obj: Any) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(obj, include_extras=True)


@functools.cache
def hints_of(group: type) -> dict[str, Any]:
    """An options dataclass's annotations, resolved in this module's namespace: typing would look
    them up in sys.modules[group.__module__], which is not this module when it runs as a script
    (`runpy.run_module("amst_bench.cli", run_name="__main__")` leaves another `__main__` there:
    NameError on the aliases)."""
    import typing

    return typing.get_type_hints(group, globalns=globals(), include_extras=True)


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        part = part.strip()
        if not part.lstrip("-").isdigit() or int(part) < 0:
            raise UserError(f"--seeds: expected a comma list of non-negative integers, got {text!r}")
        seeds.append(int(part))
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: repeated seed in {text!r}")
    return seeds


PROTOCOL_FIELDS = {f.name for f in dataclasses.fields(Protocol)}


@dataclass
class Overrides:
    protocol: dict[str, str] = field(default_factory=dict)
    methods: dict[str, dict[str, str]] = field(default_factory=dict)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)


def split_overrides(items: list[str] | None, text_model: Path | None = None) -> Overrides:
    """Separate `--set` items into protocol overrides, method options and dataset options
    (`--text-model PATH` is the protocol override text_model=PATH)."""
    out = Overrides()
    if text_model is not None:
        out.protocol["text_model"] = str(text_model)
    for item in items or []:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        owner, dot, option = key.partition(".")
        if owner in PROTOCOL_FIELDS:
            out.protocol[key] = value
            continue
        if dot and option and owner in registry.methods.names():
            out.methods.setdefault(owner, {})[option] = value
        elif dot and option and owner in registry.datasets.names():
            out.datasets.setdefault(owner, {})[option] = value
        else:
            raise UserError(
                f"--set {key}: not a protocol field ({', '.join(option_names(Protocol))}), "
                "METHOD.OPTION nor DATASET.OPTION"
            )
    return out


def _select(reg: registry.Registry, spec: str, flag: str) -> list[str]:
    try:
        return reg.select(spec)
    except UserError as exc:
        raise UserError(f"{flag}: {exc}") from None


def _grid(opts: GridOptions, methods: str, variants=None):
    """The planned runs of a grid command, and where its data is. Flags are checked before torch
    is imported, so a mistake is reported at once."""
    overrides = split_overrides(opts.sets, opts.text_model)
    protocol = apply_overrides(get_profile(opts.profile), overrides.protocol)
    try:
        dataset_refs = select_datasets(opts.datasets)
    except UserError as exc:
        raise UserError(f"--datasets: {exc}") from None
    method_names = _select(registry.methods, methods, "--methods") if variants is None else []
    seeds = parse_seeds(opts.seeds) if opts.seeds is not None else list(protocol.seeds)
    locations = DataLocations.from_environment(opts.data_root, opts.cache_dir, overrides.datasets)

    from amst_bench.runner import GridRequest, plan

    request = GridRequest(
        methods=method_names,
        datasets=dataset_refs,
        seeds=seeds,
        protocol=protocol,
        protocol_overrides=overrides.protocol,
        method_overrides=overrides.methods,
        variants=variants,
        locations=locations,
    )
    return plan(request), request.locations


def _execute(specs, opts: GridOptions, strict: bool, locations: DataLocations, executor=None):
    from amst_bench.report.progress import RichReporter
    from amst_bench.report.results import ResultStore
    from amst_bench.report.tracking import FanOut, trackers
    from amst_bench.runner import execute
    from amst_bench.train.environment import resolve_device

    wanted = trackers(opts.results, opts.tensorboard, opts.wandb)  # a missing package: said before anything
    store = ResultStore(opts.results)
    store.ensure_writable()
    if specs and specs[0].protocol.encoder == "resnet18":
        if resolve_device(specs[0].protocol.device).type == "cpu":
            typer.echo(
                f"warning: profile '{specs[0].protocol.profile}' trains ResNet18 encoders on the CPU, "
                "which takes hours to days; --profile smoke is the quick check",
                err=True,
            )
    to_train = [s for s in specs if opts.force or not store.has_result(s.run_id)]
    with RichReporter(len(to_train)) as bar, contextlib.ExitStack() as closing:
        tracked = [closing.enter_context(t) for t in wanted]
        reporter = FanOut(bar, *tracked) if tracked else bar
        if executor is None or executor.in_process:
            outcome = execute(specs, store, reporter, force=opts.force, strict=strict, locations=locations)
        else:  # handed to worker processes, Slurm or Ray (amst_bench/executors)
            from amst_bench.executors import make_executor

            tracking = (opts.tensorboard, opts.wandb)  # trackers log in the process that trains the run
            outcome = make_executor(executor).execute(
                specs, store, bar, opts.force, strict, locations, tracking
            )
    reported = set()
    for spec, why in outcome.unsupported:
        if (spec.variant, spec.dataset) not in reported:
            reported.add((spec.variant, spec.dataset))
            typer.echo(f"not run: {spec.variant} on {spec.dataset}: {why}", err=True)
    for spec, record in outcome.failed:
        typer.echo(f"failed: {spec.label}: {record.get('error')}; log: {record.get('log')}", err=True)
    return store, outcome


def _leaderboard(store, board_dir: Path, show: bool = True, figures: bool = False) -> None:
    """Write the tables (accuracy.md links the figures the results support) and, with `figures` or
    where figures/ was drawn before, draw the figures: grid commands leave the first drawing to
    `amst-bench plot` / `leaderboard` (matplotlib takes seconds), then keep them up to date."""
    from amst_bench.report import figures as figure_plan
    from amst_bench.report.leaderboard import summary_for_terminal, write_leaderboards

    results = store.load_results()
    try:
        paths = write_leaderboards(results, board_dir)
    except OSError as exc:
        raise UserError(f"--leaderboard-dir {board_dir}: not writable ({exc.strerror or exc})") from None
    if show:
        typer.echo(summary_for_terminal(results))
    typer.echo(f"leaderboards written: {', '.join(str(p) for p in paths)}")
    if figures or (board_dir / "figures" / figure_plan.INDEX).is_file():
        _figures(results, board_dir / "figures")
    elif figure_plan.plan(results):
        typer.echo(f"figures: not drawn yet; `amst-bench plot` draws them into {board_dir / 'figures'}")


def _figures(results, figure_dir: Path) -> None:
    from amst_bench.report import figures

    planned = figures.plan(results)
    try:
        drawn = figures.render(planned, figure_dir)
    except OSError as exc:
        raise UserError(f"{figure_dir}: figures not writable ({exc.strerror or exc})") from None
    typer.echo(f"figures: {len(planned)} in {figure_dir} ({len(drawn)} redrawn), listed in {figures.INDEX}")


def _stored_results(results_dir: Path | None, leaderboard_dir: Path | None, published: bool):
    """The results a table/figure command reads and where its tables go: yours, or with
    --published the repository's curated runs and its leaderboards/."""
    from amst_bench.report.results import ResultStore

    if published:
        if results_dir is not None:
            raise UserError(f"--published reads {PUBLISHED}/; give --results-dir without it")
        if not (PUBLISHED / "runs").is_dir():
            raise UserError(f"--published: no {PUBLISHED / 'runs'} here (run it in the repository's root)")
        return ResultStore(PUBLISHED), leaderboard_dir or PUBLISHED_BOARDS
    results_dir = results_root(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: no such folder (run `amst-bench run` first)")
    return ResultStore(results_dir), boards_dir(leaderboard_dir, results_dir)


@app.command()
@with_options(GridOptions)
def run(
    opts: GridOptions,
    methods: MethodsOpt = "all",
    executor: ExecutorOpt = "local",
    workers_per_gpu: WorkersPerGpuOpt = 1,
    max_retries: MaxRetriesOpt = 2,
    slurm_partition: SlurmPartitionOpt = None,
    slurm_cluster: SlurmClusterOpt = "slurm",
    gpus_per_task: GpusPerTaskOpt = 0,
    time_limit: TimeLimitOpt = 24 * 60,
    cpus_per_task: CpusPerTaskOpt = 1,
    ray_address: RayAddressOpt = None,
    leaderboard: Annotated[bool, typer.Option(help="write and print the leaderboard afterwards")] = True,
) -> None:
    """Train every (method, dataset, seed) of the grid; finished runs are kept, interrupted ones
    resume. With --methods all, a method that cannot run on a dataset is reported, not replaced.
    The paper profile needs a GPU (hours per run on a CPU); --profile smoke runs in minutes.
    --executor hands the runs to worker processes, Slurm or Ray (README, "Scale out"); a run that
    fails there is named with its log, and the command exits 1."""
    from amst_bench.executors import ExecutorSettings

    settings = ExecutorSettings.parse(
        executor, workers_per_gpu=workers_per_gpu, max_retries=max_retries, slurm_partition=slurm_partition,
        slurm_cluster=slurm_cluster, gpus_per_task=gpus_per_task, time_limit_min=time_limit,
        cpus_per_task=cpus_per_task, ray_address=ray_address,
    )
    specs, locations = _grid(opts, methods)
    store, outcome = _execute(specs, opts, methods.strip() != "all", locations, settings)
    if leaderboard:
        _leaderboard(store, opts.boards)
    if outcome.failed:
        raise typer.Exit(1)


@app.command()
@with_options(GridOptions)
def ablation(opts: GridOptions) -> None:
    """Run the paper's ablation grid (Alt / Joint / Skip: AMST-Joint, AMST-Alt, AMST-Full, each
    with and without skipping) and write the leaderboards."""
    specs, locations = _grid(opts, "", ABLATION_VARIANTS)
    store, _ = _execute(specs, opts, True, locations)
    _leaderboard(store, opts.boards, show=False)
    typer.echo((opts.boards / "ablation.md").read_text())


@app.command()
@with_options(GridOptions)
def bench(
    opts: GridOptions,
    methods: MethodsOpt = "all",
    device: Annotated[
        str | None, typer.Option("--device", help="cuda (default where there is one) or cpu")
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="at most N training steps per epoch (max_train_steps; recorded)"),
    ] = None,
    speeds: Annotated[
        str | None,
        typer.Option("--speeds", help="default,fast: every method timed under each, side by side"),
    ] = None,
    allow_cpu: Annotated[bool, typer.Option("--allow-cpu", help="time on the CPU if no CUDA")] = False,
) -> None:
    """A short timed grid under the `bench` profile (the paper's encoders and input sizes, 5 epochs,
    one seed unless --seeds gives more) on CUDA, or on the CPU with --device cpu (with --steps N for
    the paper's encoders), and in the same process, before and after the runs, the compute floor (the
    plain joint model on batches already on the device, train/floor.py) per dataset and protocol.
    Seconds per epoch, the floor and their ratio land in <results dir>/leaderboards/timing.md under
    'bench' (`amst-bench publish` takes them into the repository's tables). --speeds default,fast
    times each method under both, side by side."""
    import torch

    from amst_bench.report.results import ResultStore

    sets = list(opts.sets or []) + _bench_device(device, allow_cpu, torch.cuda.is_available())
    if steps is not None:
        if steps < 1:
            raise UserError(f"--steps: expected a positive number of training steps per epoch, got {steps}")
        sets.append(f"max_train_steps={steps}")
    opts = dataclasses.replace(opts, profile="bench", sets=sets)  # --seeds: default the profile's one
    grids = [_grid(dataclasses.replace(opts, sets=sets + extra), methods) for extra in _bench_speeds(speeds)]
    specs = [s for group in itertools.zip_longest(*(g[0] for g in grids)) for s in group if s is not None]
    locations = grids[0][1]
    pending = ResultStore(opts.results)
    pending.ensure_writable()
    to_train = {s.run_id for s in specs if opts.force or not pending.has_result(s.run_id)}
    floor_data: dict = {}  # protocol -> DatasetCache: the floor's before and after load each dataset once
    before = _floors(_floor_groups(specs, to_train), locations, floor_data)  # the floor brackets the runs…
    store, outcome = _execute(specs, opts, methods.strip() != "all", locations)
    _record_floors(specs, outcome, store, locations, before, floor_data)  # …and after them
    _leaderboard(store, opts.boards, show=False)
    typer.echo((opts.boards / "timing.md").read_text())


def _bench_device(device: str | None, allow_cpu: bool, has_cuda: bool) -> list[str]:
    """The --set items bench's device choice adds: CUDA by default, the CPU only when asked for."""
    if device is None:
        if has_cuda:
            return []
        if allow_cpu:
            return ["device=cpu"]
        raise UserError("bench: no CUDA device here; use --device cpu to time on the CPU (--steps N keeps "
                        "the paper's encoders short)")
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device: expected cpu or cuda, got {device!r}")
    if device == "cuda" and not has_cuda:
        raise UserError("--device cuda: CUDA is not available on this machine")
    return ["device=cpu"] if device == "cpu" else []  # cuda: the profile's "auto" finds it


def _bench_speeds(speeds: str | None) -> list[list[str]]:
    """--speeds default,fast → the extra --set items of each grid ([] for the default)."""
    if speeds is None:
        return [[]]
    names = [s.strip() for s in speeds.split(",")]
    if not names or any(n not in ("default", "fast") for n in names) or len(set(names)) != len(names):
        raise UserError(f"--speeds: expected a comma list of default and fast, got {speeds!r}")
    return [[] if n == "default" else [f"speed={n}"] for n in names]


def _floor_groups(specs, run_ids: set[str]) -> dict[tuple, list]:
    """(dataset, protocol) -> its specs among `run_ids`: the floor is measured once per group."""
    groups: dict[tuple, list] = {}
    for spec in specs:
        if spec.run_id in run_ids:
            groups.setdefault((spec.dataset_ref, spec.protocol), []).append(spec)
    return groups


def _floors(groups: dict[tuple, list], locations: DataLocations, caches: dict) -> dict[tuple, Any]:
    """The compute floor (train/floor.py) of each (dataset, protocol) group, mean of up to 3 epochs;
    datasets come from `caches` (protocol -> DatasetCache, filled on first use)."""
    from amst_bench.runner import DatasetCache
    from amst_bench.train.floor import measure_floor

    def bundle(ref, protocol):
        return caches.setdefault(protocol, DatasetCache(protocol, locations)).get(ref)

    return {(ref, protocol): measure_floor(bundle(ref, protocol), protocol, epochs=min(protocol.epochs, 3))
            for ref, protocol in groups}


def _record_floors(
    specs, outcome, store, locations: DataLocations, before: dict[tuple, Any], caches: dict
) -> None:
    """Measure the floor again after the runs and write the mean of both windows (so a machine whose
    speed drifts during the grid charges the drift to both sides) beside each result trained by this
    command (seconds_per_epoch.floor)."""
    from amst_bench.report.results import RunResult
    from amst_bench.train.runspec import protocol_label

    results = {r["run_id"]: r for r in outcome.results}
    groups = _floor_groups(specs, set(results))
    after = _floors(groups, locations, caches)
    for key, members in groups.items():
        windows = [f.seconds_per_epoch for f in (before.get(key), after[key]) if f is not None]
        floor = sum(windows) / len(windows)
        label = protocol_label(key[1], members[0].overrides)
        measured = ", ".join(f"{w:.3f}" for w in windows)
        cpu_windows = [f.cpu_seconds_per_epoch for f in (before.get(key), after[key]) if f is not None]
        floor_cpu = sum(cpu_windows) / len(cpu_windows) if None not in cpu_windows else None
        cpu = f", {floor_cpu:.3f} CPU s" if floor_cpu else ""
        typer.echo(f"compute floor, {key[0].name} [{label}]: {floor:.3f} s per epoch{cpu} "
                   f"({after[key].steps} steps; before and after the runs: {measured})")
        for spec in members:
            payload = results[spec.run_id]
            timing = {**payload["seconds_per_epoch"], "floor": floor, "floor_cpu": floor_cpu}
            store.save_result(RunResult.from_json({**payload, "seconds_per_epoch": timing}))


@app.command()
def leaderboard(
    results_dir: ResultsOpt = None,
    leaderboard_dir: BoardOpt = None,
    published: Annotated[
        bool,
        typer.Option("--published", help=f"the repository's tables: {PUBLISHED}/ -> {PUBLISHED_BOARDS}/"),
    ] = False,
) -> None:
    """Regenerate the Markdown leaderboards and their figures (figures/, linked from accuracy.md)
    from stored results (nothing is trained): your runs' tables by default, the repository's
    published ones with --published."""
    store, board_dir = _stored_results(results_dir, leaderboard_dir, published)
    _leaderboard(store, board_dir, figures=True)


@app.command()
def plot(
    results_dir: ResultsOpt = None,
    leaderboard_dir: BoardOpt = None,
    published: Annotated[
        bool,
        typer.Option("--published", help=f"the repository's: {PUBLISHED}/ -> {PUBLISHED_BOARDS}/figures/"),
    ] = False,
) -> None:
    """Draw the figures from stored results into <leaderboard dir>/figures/ (index.json lists them):
    validation learning curves per modality for each method variant (the AMST paper's Fig. 3),
    prediction entropy per class and modality (Fig. 4), test accuracy against seconds per epoch."""
    store, board_dir = _stored_results(results_dir, leaderboard_dir, published)
    _figures(store.load_results(), board_dir / "figures")


@app.command()
def publish(
    source: Annotated[
        Path | None,
        typer.Option("--from", help=f"results to publish from (default as --results-dir: ./{USER_RESULTS})"),
    ] = None,
    runs: Annotated[
        list[str] | None,
        typer.Option(
            "--runs", metavar="PATTERN",
            help="METHOD[/DATASET[/LABEL]] with wildcards, or a run id; repeatable (default: all)",
        ),
    ] = None,
    to: Annotated[Path, typer.Option("--to", help="the published tree")] = PUBLISHED,
    leaderboard_dir: Annotated[
        Path, typer.Option("--leaderboard-dir", help="where the published tables go")
    ] = PUBLISHED_BOARDS,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="replace published results of these runs or of other code versions"),
    ] = False,
    site: Annotated[
        Path | None,
        typer.Option(
            "--site", metavar="DIR",
            help="also write the static leaderboard site to DIR; alone (no --from/--runs): only build it "
            "from --to",
        ),
    ] = None,
) -> None:
    """Copy chosen finished runs into the published tree and regenerate its leaderboards from it.
    Runs sharing a protocol label must share one code version (amst-bench version + the method's
    version); nothing published is removed or overwritten without --replace. With --site DIR, the
    static site (sortable tables, a page per method and dataset) is built from the published tree."""
    from amst_bench.report import publish as pub
    from amst_bench.report.results import ResultStore

    if site is not None and source is None and not runs:
        _build_site(to, site, leaderboard_dir / "figures")
        return
    source = results_root(source)
    if not source.is_dir():
        raise UserError(f"--from {source}: no such folder (run `amst-bench run` first)")
    if to.exists() and not to.is_dir():
        raise UserError(f"--to {to}: not a folder")
    if to.resolve() == source.resolve():
        raise UserError(f"--from {source} and --to {to} are the same folder")
    target = ResultStore(to)
    chosen = pub.select(pub.scan(ResultStore(source)), runs, source)
    plan = pub.plan(chosen, pub.scan(target), replace)
    try:
        target.runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--to {to}: not writable ({exc.strerror or exc})") from None
    pub.apply(plan, target)
    typer.echo(
        f"published {len(plan.copy)} run(s) into {target.runs_dir}: {len(plan.unchanged)} there already, "
        f"{len(plan.replaced)} replaced, {len(plan.remove)} file(s) of another version removed"
    )
    _leaderboard(target, leaderboard_dir, show=False, figures=True)
    if site is not None:
        _build_site(to, site, leaderboard_dir / "figures")


def _build_site(tree: Path, site: Path, figures: Path) -> None:
    """The static site from a published tree's runs (and the figures `amst-bench plot` indexed)."""
    from amst_bench.report import publish as pub
    from amst_bench.report.results import ResultStore
    from amst_bench.report.site import build_site

    if not (tree / "runs").is_dir():
        raise UserError(f"--to {tree}: no {tree / 'runs'} folder to build the site from")
    files = build_site(pub.scan(ResultStore(tree)), site, lambda m: registry.methods.get(m).family, figures)
    pages = sum(1 for name in files if name.endswith(".html"))
    typer.echo(f"site written: {site / 'index.html'} ({pages} pages, {len(files)} files)")


data_app = typer.Typer(
    help="Check and preprocess datasets (decode once into the tensor cache).", no_args_is_help=True
)
app.add_typer(data_app, name="data")


def _adapter(dataset: str, opts: DataOptions):
    overrides = split_overrides(opts.sets, opts.text_model)
    protocol = apply_overrides(get_profile(opts.profile), overrides.protocol)
    locations = DataLocations.from_environment(opts.data_root, opts.cache_dir, overrides.datasets)
    try:
        [ref] = select_datasets(dataset)
    except ValueError:
        raise UserError(f"DATASET: expected one dataset, got {dataset!r}") from None
    adapter = make_adapter(ref, locations)
    if not adapter.reads_files:
        raise UserError(f"dataset '{ref}' is generated in memory: nothing to check or prepare")
    return adapter, protocol


DatasetArg = Annotated[str, typer.Argument(help="a dataset name, or name:PATH (e.g. manifest:./my_data)")]


@data_app.command("check")
@with_options(DataOptions)
def data_check(dataset: DatasetArg, opts: DataOptions) -> None:
    """Report every problem of a dataset at once (missing or unreadable files, unknown labels,
    empty splits), without training. Exit 1 when there is any."""
    adapter, protocol = _adapter(dataset, opts)
    problems = adapter.check(protocol)
    for line in problems:
        typer.echo(line)
    if problems:
        typer.echo(f"{dataset}: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{dataset}: no problems found")


@data_app.command("prepare")
@with_options(DataOptions)
def data_prepare(dataset: DatasetArg, opts: DataOptions) -> None:
    """Decode a dataset once into its tensor cache (training reads only the cache)."""
    adapter, protocol = _adapter(dataset, opts)
    from amst_bench.report.progress import DecodeProgress

    with DecodeProgress(f"preparing {dataset}") as progress:
        path = adapter.prepare(protocol, progress)
    typer.echo(f"{dataset}: cache ready at {path}")


@data_app.command("frames")
def data_frames(
    src: Annotated[Path, typer.Argument(help="folder of videos (e.g. CREMA-D's VideoFlash/)")],
    dest: Annotated[Path, typer.Argument(help="one frame folder per clip goes here (IMAGE_KEPT_1_PER_SEC/)")],
    per_second: Annotated[
        int, typer.Option("--per-second", help="kept per second: 1 (CREMA-D, AVE, UR-FUNNY), 2 (IEMOCAP)")
    ] = 1,
    ext: Annotated[
        list[str] | None, typer.Option("--ext", help="video extension, repeatable (default: common ones)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="clips extracted in parallel processes")] = 1,
) -> None:
    """Extract frames from videos by the AMST frame script's rule (decoded frame n kept when
    n mod int(fps) = 0; with --per-second 2 also half a second later) into DEST/<clip>/<n>.jpg,
    the layout the dataset adapters read. Needs PyAV (amst-bench[frames]); clips already
    extracted are kept, so a rerun resumes. A video that cannot be extracted is reported in one
    line and the rest go on; exit 1 when any failed."""
    from amst_bench.data.frames import VIDEO_EXTENSIONS, extract
    from amst_bench.report.progress import DecodeProgress

    extensions = tuple(f".{e.lower().lstrip('.')}" for e in ext) if ext else VIDEO_EXTENSIONS
    with DecodeProgress(f"extracting frames from {src}") as progress:
        done = extract(src, dest, per_second, extensions, progress, workers)
    for video, reason in done.failures:
        typer.echo(f"amst-bench: error: {video}: {reason}", err=True)
    failed = f"; {len(done.failures)} failed" if done.failures else ""
    typer.echo(
        f"{dest}: {done.frames} frame(s) from {done.clips} clip(s); {done.skipped} there already{failed}"
    )
    if done.failures:
        raise typer.Exit(1)


@app.command()
def status(
    results_dir: ResultsOpt = None,
    each: Annotated[bool, typer.Option("--each", help="one line per finished run too")] = False,
) -> None:
    """Finished runs per protocol and dataset (--each: one line per run); then every other run,
    one line each: running (its lock is held), resumable (interrupted; `amst-bench run` with the
    same arguments resumes it), queued (handed to an executor, not started) and failed (with its
    error and log)."""
    import collections

    from amst_bench.executors import records
    from amst_bench.locks import is_held
    from amst_bench.report.results import ResultStore, warn_on_stderr

    results_dir = results_root(results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise UserError(f"--results-dir {results_dir}: not a folder")
    store = ResultStore(results_dir)
    stored = store.load_results()
    finished = collections.Counter((r.protocol_label, r.dataset) for r in stored)
    for (label, dataset), count in sorted(finished.items()):
        typer.echo(f"finished  {count:4d} run(s)  {dataset}  [{label}]")
    for r in sorted(stored, key=lambda r: (r.protocol_label, r.dataset, r.variant, r.seed)) if each else []:
        test = f"test acc {r.test.accuracy:.1%}" if r.test else "no test"
        typer.echo(f"finished {r.variant} on {r.dataset}, seed {r.seed} [{r.protocol_label}]: {test}")
    resumable = store.in_progress()
    running = {p.stem for p in (results_dir / "locks").glob("*.lock") if is_held(p)}
    for p in resumable:
        # A checkpoint beside a stored result is an interrupted --force redo: a plain `run` keeps
        # the stored result, only `run --force` resumes the redo.
        redo = store.has_result(p.run_id)
        how = "resumable with --force (a redo; the stored result stands)" if redo else "resumable"
        how = "running" if p.run_id in running else how
        typer.echo(
            f"{how} {p.variant} on {p.dataset}, seed {p.seed} [{p.protocol_label}]: "
            f"{p.epochs_done}/{p.epochs} epochs, best val {p.best_val_acc:.1%}"
        )
    shown = {p.run_id for p in resumable}
    queued = {r.run_id: r for r in records.read(records.queue_dir(results_dir), warn_on_stderr)}
    for run_id in sorted(running - shown):  # started, no epoch checkpointed yet
        what = queued[run_id].line() if run_id in queued else run_id
        typer.echo(f"running {what}: no epoch finished yet")
    failed = [r for r in records.read(records.failed_dir(results_dir), warn_on_stderr)
              if not store.has_result(r.run_id) and r.run_id not in running]
    started = running | shown
    waiting = [r for r in queued.values() if r.run_id not in started and not store.has_result(r.run_id)]
    for record in waiting:
        typer.echo(f"queued {record.line()}")
    for record in failed:
        typer.echo(f"failed {record.label} [{record.protocol_label}]: {record.error}; log: {record.log}")
    if not finished and not resumable and not running and not waiting and not failed:
        typer.echo(f"no runs in {results_dir}")


@app.command("list")
def list_plugins(
    pattern: Annotated[str, typer.Argument(help="wildcard filter, e.g. 'amst-*'")] = "*",
) -> None:
    """Registered methods and datasets, with one-line descriptions and where each comes from
    (built-in, or the package that registered it)."""
    import fnmatch

    for title, reg in (("methods", registry.methods), ("datasets", registry.datasets)):
        names = fnmatch.filter(reg.names(), pattern)
        if not names:
            continue
        typer.echo(f"{title}:")
        width = max(len(n) for n in names)
        for name in names:
            origin = reg.origin(name)
            where = "" if origin == registry.BUILT_IN else f"  [from {origin}]"
            typer.echo(f"  {name:<{width}}  {reg.describe(name)}{where}")


_HERE = Path(__file__).resolve().parents[1]
_OWN_CODE = tuple(f"{_HERE / d}/" for d in ("amst_bench", "datasets", "methods"))
_PYTHON_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The harness's own warnings (data accepted as given, a file set aside) as one line, as
    errors are; anything else as Python shows it."""
    if issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(_OWN_CODE):
        print(f"amst-bench: warning: {message}", file=file or sys.stderr)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


INTERRUPTED = 130  # the exit code of a command stopped by Ctrl-C


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user mistakes into one line on stderr and exit code 2."""
    command = typer.main.get_command(app)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = command.main(args=argv, prog_name="amst-bench", standalone_mode=False)
    except UserError as exc:
        message = str(exc)
        if "\n" in message:  # e.g. a library's message carried in one: still one line
            message = " ".join(message.split())
        print(f"amst-bench: error: {message}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:
        print(f"amst-bench: {exc}", file=sys.stderr)
        sys.exit(130)
    except (typer.Abort, KeyboardInterrupt):
        print("amst-bench: interrupted; finished runs are kept and unfinished ones resume", file=sys.stderr)
        sys.exit(130)
    except OSError as exc:
        if exc.filename is None:
            raise
        # The system refused a file (a full disk, a read-only folder): one line naming it. Writes
        # are atomic (amst_bench.atomic), so every file written before is intact.
        print(f"amst-bench: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        # Usage errors of the CLI library (unknown option, bad value): duck-typed, since typer
        # versions differ in where click's exception classes live.
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):
            print(f"amst-bench: error: {exc.format_message()}", file=sys.stderr)
            sys.exit(exc.exit_code or 2)
        raise
    if code == INTERRUPTED:  # typer turns Ctrl-C outside the grid's own handling into Exit(130)
        print("amst-bench: interrupted; finished runs are kept and unfinished ones resume", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
