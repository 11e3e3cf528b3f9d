"""Shared test helpers: a small synthetic dataset and methods built on it, all on the CPU; the CLI
in-process; a one-epoch smoke grid on any dataset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from amst_bench import registry
from amst_bench.data.tensors import Batch, iterate_batches
from amst_bench.options import build_config
from amst_bench.protocol import get_profile
from amst_bench.report.results import ResultStore
from amst_bench.train.method import MethodContext
from amst_bench.train.runspec import RunSpec
from amst_bench.train.trainer import Trainer, encoder_factory


def small_protocol(**changes):
    base = dataclasses.replace(get_profile("smoke"), synthetic_samples=240, epochs=3, seeds=(0,))
    return dataclasses.replace(base, **changes)


def run_spec(method: str, options: dict | None = None, dataset: str = "synthetic", seed: int = 0,
             protocol=None, **changes) -> RunSpec:
    """A RunSpec of `method` with `options` (as CLI strings would give them) on `dataset`, under
    `protocol` or else small_protocol(**changes)."""
    cls = registry.methods.get(method)
    return RunSpec(cls, build_config(cls, dict(options or {})), dataset, seed,
                   small_protocol(**changes) if protocol is None else protocol)


def load_bundle(name: str = "synthetic", protocol=None):
    protocol = protocol or small_protocol()
    bundle = registry.datasets.get(name)().load(protocol)
    bundle.name = name
    return bundle


def make_method(name: str, dataset: str = "synthetic", seed: int = 0, **options):
    """A method instance on a small dataset; options are given as CLI strings would be."""
    protocol = small_protocol()
    bundle = load_bundle(dataset, protocol)
    torch.manual_seed(seed)
    cls = registry.methods.get(name)
    config = build_config(cls, {k: str(v) for k, v in options.items()})
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
    return cls(config, ctx), bundle


def first_batch(bundle, size: int = 32) -> Batch:
    return next(iterate_batches(bundle.train, size))


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers (BatchNorm statistics) by name, cloned."""
    state = {f"param:{n}": p.detach().clone() for n, p in module.named_parameters()}
    state |= {f"buffer:{n}": b.detach().clone() for n, b in module.named_buffers()}
    return state


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, kind: str = "param") -> set[str]:
    after = snapshot(module)
    return {
        k.split(":", 1)[1]
        for k, v in before.items()
        if k.startswith(kind + ":") and not torch.equal(v, after[k])
    }


def cli(*args: str) -> int:
    """Run `amst-bench ARGS` in-process; the exit code (0 when it returns normally)."""
    from amst_bench.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def error_line(capsys, *args: str) -> str:
    """`amst-bench ARGS` in-process, expected to fail as a usage error (exit 2) with exactly one
    line on stderr: that line."""
    capsys.readouterr()
    assert cli(*args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def smoke_run(tmp_path: Path, methods: str, dataset: str, *extra: str) -> list[dict]:
    """`amst-bench run` of `methods` on `dataset` for one epoch, seed 0, smoke profile, results
    and leaderboards under tmp_path; asserts success and returns the stored results."""
    code = cli(
        "run",
        "--methods",
        methods,
        "--datasets",
        dataset,
        "--seeds",
        "0",
        "--profile",
        "smoke",
        "--set",
        "epochs=1",
        "--results-dir",
        str(tmp_path / "r"),
        "--leaderboard-dir",
        str(tmp_path / "b"),
        *extra,
    )
    assert code == 0
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "r" / "runs").glob("*.json"))]


class Crash(Exception):
    """Raised by CrashAt: a run cut short at the end of an epoch (after its checkpoint)."""


class CrashAt:
    """A reporter that stops the run at the end of `epoch`, to test resuming."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def __getattr__(self, name):  # every other reporter call does nothing
        return lambda *args, **kwargs: None

    def end_epoch(self, epoch, *args):
        if epoch == self.epoch:
            raise Crash


def comparable(result: dict, *extra: str):
    """What a resumed run must reproduce: curves without timings, best epoch, test metrics (and
    any `extra` fields, e.g. method_resolved)."""
    curves = {k: v for k, v in result["curves"].items() if "seconds" not in k}  # timings
    return curves, result["best_epoch"], result["test"], *(result[k] for k in extra)


def whole_and_resumed(spec, bundle, tmp_path: Path, crash_epoch: int = 1) -> tuple[dict, dict]:
    """`spec` run straight through (results under tmp_path/whole), and run again cut short at the
    end of `crash_epoch` (CrashAt) then resumed (under tmp_path/resumed): (whole, resumed)."""
    whole = Trainer(spec, bundle, ResultStore(tmp_path / "whole")).run()
    store = ResultStore(tmp_path / "resumed")
    with pytest.raises(Crash):
        Trainer(spec, bundle, store, reporter=CrashAt(crash_epoch)).run()
    resumed = Trainer(spec, bundle, store).run()
    return whole, resumed
