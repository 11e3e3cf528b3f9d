"""Where a training step of the paper encoders spends its time, setting by setting (issue 11: why
did bfloat16 alone take `naive` only from 1.05 to 0.88 s/epoch on an H100?).

The plain joint model of the compute floor (train/floor.py: `naive`'s computation, the protocol's
encoders and an `lsum` head, forward + backward + SGD step on one batch already on the device) is
built once per setting below, warmed up (cuDNN autotuning, allocator growth), timed over `steps`
steps, then run `steps` more steps under torch.profiler. The report lists, per setting, the wall
time per step, the device time per step and its share by kernel group (layout transforms such as
cuDNN's nchwToNhwc / nhwcToNchw, convolutions, batch norm, matrix products, casts and copies, the
optimiser, the rest), then the top kernels by device time: their names say which kernels the
convolutions took (on a CPU, torch's operators take the kernels' place). Nothing is stored as a
result; the report is text (and the same numbers as JSON).

    python -m amst_bench.train.profiler --device cuda --out profile.txt
    python -m amst_bench.train.profiler --device cpu --batch-size 2 --steps 1 --set encoder=tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from amst_bench.atomic import atomic_write_text
from amst_bench.data.refs import DataLocations, make_adapter, select_datasets
from amst_bench.errors import UserError
from amst_bench.protocol import Protocol, apply_overrides, get_profile
from amst_bench.train.environment import determinism_record, resolve_device, synchronize, tf32, versions
from amst_bench.train.floor import floor_model

# (label, protocol overrides): fp32 as published, bf16 alone (what the H100 runs tried), each of
# the two suspected causes removed in turn, both, and the whole fast preset.
SETTINGS: tuple[tuple[str, dict[str, str]], ...] = (
    ("fp32, NCHW (default)", {}),
    ("bf16, NCHW", {"precision": "bf16"}),
    ("bf16, NCHW, cudnn.benchmark", {"precision": "bf16", "cudnn_benchmark": "true"}),
    ("bf16, channels-last", {"precision": "bf16", "channels_last": "true"}),
    ("bf16, channels-last, cudnn.benchmark",
     {"precision": "bf16", "channels_last": "true", "cudnn_benchmark": "true"}),
    ("speed=fast", {"speed": "fast"}),
)

# Kernel (or, on a CPU, operator) groups: the first pattern a name matches wins, in this order
# (cuDNN's batch-norm kernels are named cudnn::bn_…, its convolutions …fprop/dgrad/wgrad…; cuBLAS
# GEMMs on Hopper sm90_xmma_gemm_…).
GROUPS: tuple[tuple[str, str], ...] = (
    ("layout transforms", r"nchwToNhwc|nhwcToNchw|transpose|permute"),
    ("batch norm", r"batch_norm|batchnorm|bn_fw|bn_bw|bnFwd|bnBwd|welford"),
    ("convolution", r"conv|fprop|dgrad|wgrad|implicit_gemm|winograd|fft|flip_filter|cudnn|mkldnn"),
    ("matrix products", r"gemm|cublas|cutlass|addmm|\bmm\b|matmul|linear"),
    ("optimiser", r"sgd|multi_tensor|foreach|fused"),
    ("casts and copies", r"copy|cast|Memcpy|Memset"),
)


@dataclass
class KernelTime:
    name: str
    calls: int
    microseconds: float


@dataclass
class SettingProfile:
    """One setting's timings: wall and device milliseconds per step, the share of device time per
    kernel group, and the kernels by device time (per step)."""

    label: str
    overrides: dict[str, str]
    measured: str  # "GPU kernels", or operators' self CPU time
    determinism: dict[str, Any]
    wall_ms_per_step: float
    device_ms_per_step: float
    groups_percent: dict[str, float]
    kernels: list[KernelTime] = field(default_factory=list)
    error: str = ""  # why this setting could not be profiled


def group_of(name: str) -> str:
    for group, pattern in GROUPS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return group
    return "other"


def kernel_times(prof: Any, device: torch.device) -> tuple[list[KernelTime], str]:
    """Device time by kernel name (CUDA: the GPU kernels and copies; CPU: each operator's self
    time, also where no GPU kernel was recorded: the report says which), most first."""
    calls: dict[str, int] = defaultdict(int)
    micros: dict[str, float] = defaultdict(float)
    if device.type == "cuda":
        for event in prof.events():
            if event.device_type == torch.autograd.DeviceType.CUDA:
                calls[event.name] += 1
                micros[event.name] += event.time_range.elapsed_us()
    measured = "GPU kernels"
    if not micros:  # a CPU, or no GPU activity recorded (CUPTI unavailable): the operators' CPU time
        missing = " (no GPU kernel was recorded)" if device.type == "cuda" else ""
        measured = f"operators' self CPU time{missing}"
        for avg in prof.key_averages():
            if avg.self_cpu_time_total > 0:
                calls[avg.key] += avg.count
                micros[avg.key] += avg.self_cpu_time_total
    kernels = sorted((KernelTime(n, calls[n], micros[n]) for n in micros), key=lambda k: -k.microseconds)
    return kernels, measured


def profile_setting(bundle, base: dict[str, str], label: str, overrides: dict[str, str], steps: int,
                    warmup: int) -> SettingProfile:
    protocol = apply_overrides(get_profile("bench"), base | overrides)
    built = floor_model(bundle, protocol)
    batch, device = built.batches[0], built.device
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with tf32(True if built.protocol.tf32 else None):
        for _ in range(warmup):  # cuDNN autotuning (when on), allocator growth
            built.step(batch)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            built.step(batch)
        synchronize(device)
        wall = (time.perf_counter() - start) / steps
        determinism = determinism_record()
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(steps):
                built.step(batch)
            synchronize(device)
    kernels, measured = kernel_times(prof, device)
    total = sum(k.microseconds for k in kernels) or 1.0
    groups: dict[str, float] = defaultdict(float)
    for k in kernels:
        groups[group_of(k.name)] += 100.0 * k.microseconds / total
    per_step = [KernelTime(k.name, round(k.calls / steps), k.microseconds / steps) for k in kernels]
    return SettingProfile(label, overrides, measured, determinism, 1000.0 * wall, total / steps / 1000.0,
                          dict(groups), per_step)


def load_synthetic(protocol: Protocol):
    [ref] = select_datasets("synthetic")
    bundle = make_adapter(ref, DataLocations.from_environment(None, None, {})).load(protocol)
    bundle.name = ref.name
    return bundle


def profile_settings(
    base: dict[str, str], steps: int, warmup: int, only: list[str] | None = None,
    after_each: Callable[[dict[str, Any], list[SettingProfile]], None] | None = None,
) -> tuple[dict[str, Any], list[SettingProfile]]:
    """Every setting of SETTINGS (or those whose label is in `only`), on one synthetic bundle of
    the bench profile's shapes with `base` overrides; returns the machine facts and the profiles.
    A setting that fails is kept with its error (the others still run); `after_each` sees the
    profiles so far after each setting (the command writes its report then, so a run cut short
    keeps what it measured)."""
    protocol = apply_overrides(get_profile("bench"), base)
    if protocol.cpu_threads:
        torch.set_num_threads(protocol.cpu_threads)  # as the runs (and floor_model) have it
    bundle = load_synthetic(protocol)
    device = resolve_device(protocol.device)
    facts = {
        "versions": versions(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch_size": protocol.batch_size,
        "input_shapes": {m: list(s) for m, s in bundle.input_shapes.items()},
        "encoder": protocol.encoder,
        "steps": steps,
        "warmup": warmup,
        "torch_threads": torch.get_num_threads(),
    }
    profiles: list[SettingProfile] = []
    for label, overrides in SETTINGS:
        if only is not None and label not in only:
            continue
        try:
            profiles.append(profile_setting(bundle, base, label, overrides, steps, warmup))
        except UserError:
            raise
        except Exception as exc:  # e.g. a kernel this stack lacks: the other settings still count
            error = f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:300]
            profiles.append(SettingProfile(label, overrides, "", {}, 0.0, 0.0, {}, error=error))
        if after_each is not None:
            after_each(facts, profiles)
    return facts, profiles


def _name(name: str, width: int = 150) -> str:
    name = name.replace("|", "/")
    return name if len(name) <= width else name[: width - 1] + "…"


def report(facts: dict[str, Any], profiles: list[SettingProfile], top: int = 15) -> str:
    versions_ = facts["versions"]
    measured = sorted({p.measured for p in profiles})
    lines = [
        "# Kernel profile: the plain joint model (naive's computation, train/floor.py), one batch "
        "on the device",
        "",
        f"device: {facts['device']}; torch {versions_['torch']}, CUDA {versions_['cuda']}, "
        f"cuDNN {versions_['cudnn']}; torch threads {facts['torch_threads']}",
        f"encoders: {facts['encoder']}; batch {facts['batch_size']}; inputs per sample "
        + ", ".join(f"{m} {s}" for m, s in facts["input_shapes"].items()),
        f"per setting: {facts['warmup']} warm-up step(s), {facts['steps']} timed step(s), then "
        f"{facts['steps']} profiled step(s); device time per step = the sum of {' / '.join(measured)}",
        "",
        "| setting | wall ms/step | device ms/step | "
        + " | ".join(f"{g} %" for g, _ in GROUPS) + " | other % |",
        "| --- | --- | --- | " + " | ".join("---" for _ in GROUPS) + " | --- |",
    ]
    for p in profiles:
        if p.error:
            lines.append(f"| {p.label} | failed: {_name(p.error, 200)} |")
            continue
        shares = " | ".join(f"{p.groups_percent.get(g, 0.0):.1f}" for g, _ in (*GROUPS, ("other", "")))
        lines.append(f"| {p.label} | {p.wall_ms_per_step:.1f} | {p.device_ms_per_step:.1f} | {shares} |")
    lines += ["", "Kernel groups (first match wins, case-insensitive): "
              + "; ".join(f"{g}: `{pattern}`" for g, pattern in GROUPS) + "; other: the rest.", ""]
    for p in (p for p in profiles if not p.error):
        flags = ", ".join(f"{k}={v}" for k, v in p.determinism.items())
        lines += [f"## {p.label}", "", f"overrides: {p.overrides or 'none'}; backend flags: {flags}", "",
                  f"| {p.measured}: top {top} | group | calls/step | ms/step | % |",
                  "| --- | --- | --- | --- | --- |"]
        total = sum(k.microseconds for k in p.kernels) or 1.0
        for k in p.kernels[:top]:
            share = 100 * k.microseconds / total
            lines.append(f"| {_name(k.name)} | {group_of(k.name)} | {k.calls} | {k.microseconds / 1000:.2f} "
                         f"| {share:.1f} |")
        lines.append("")
    return "\n".join(lines)


def as_json(facts: dict[str, Any], profiles: list[SettingProfile], top: int = 40) -> str:
    payload = {"facts": facts, "settings": [
        {**dataclasses.asdict(p), "kernels": [dataclasses.asdict(k) for k in p.kernels[:top]]}
        for p in profiles
    ]}
    return json.dumps(payload, indent=2, default=str)


def refuse(message: str) -> None:
    print(f"amst-bench profiler: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None,
                        help="cuda (default where there is one) or cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the bench profile's (64)")
    parser.add_argument("--steps", type=int, default=3, help="timed and profiled steps per setting")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (cuDNN autotuning)")
    parser.add_argument("--top", type=int, default=15, help="kernels listed per setting")
    parser.add_argument("--only", action="append", metavar="LABEL", help="one setting by its label")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a bench-protocol override for every setting, e.g. encoder=tiny (repeatable)")
    parser.add_argument("--out", type=Path, help="write the report here (and its numbers to OUT.json)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.top < 1:
        refuse("--steps and --top must be at least 1, --warmup at least 0")
    malformed = [item for item in args.set if "=" not in item]
    if malformed:
        refuse(f"--set {malformed[0]}: expected FIELD=VALUE")
    base = dict(item.split("=", 1) for item in args.set)
    device = args.device or ("cuda" if torch.cuda.is_available() else None)
    if device is None:
        refuse("no CUDA device here; use --device cpu to profile on the CPU")
    if device == "cuda" and not torch.cuda.is_available():
        refuse("--device cuda: CUDA is not available on this machine")
    base["device"] = device
    if args.batch_size is not None:
        if args.batch_size < 1:
            refuse(f"--batch-size: expected a positive integer, got {args.batch_size}")
        base["batch_size"] = str(args.batch_size)
    batch = int(base.get("batch_size", get_profile("bench").batch_size))
    base.setdefault("synthetic_samples", str(max(10, 2 * batch)))  # one batch is all a setting needs
    known = [label for label, _ in SETTINGS]
    unknown = [label for label in args.only or [] if label not in known]
    if unknown:
        refuse(f"--only {unknown[0]!r}: expected one of {'; '.join(known)}")
    def write(facts: dict[str, Any], profiles: list[SettingProfile]) -> None:
        if args.out is not None:
            atomic_write_text(args.out, report(facts, profiles, args.top) + "\n")
            atomic_write_text(args.out.with_name(args.out.name + ".json"), as_json(facts, profiles) + "\n")
        done = profiles[-1]
        print(f"profiled {done.label}: " + (f"failed ({done.error})" if done.error else
              f"{done.wall_ms_per_step:.1f} ms/step wall, {done.device_ms_per_step:.1f} ms/step measured"),
              flush=True)

    try:
        facts, profiles = profile_settings(base, args.steps, args.warmup, args.only, write)
    except UserError as exc:
        refuse(str(exc))
    print(report(facts, profiles, args.top))
    if any(p.error for p in profiles):
        sys.exit(1)


if __name__ == "__main__":
    main()
