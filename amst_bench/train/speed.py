"""The protocol's opt-in speed settings applied to a run (`--set speed=fast`, or one by one):
channels-last memory format, cuDNN autotuning, fused SGD, torch.compile and TF32 (bfloat16
autocast is `precision`). Each may change numerics (cudnn_benchmark also determinism), so each is
recorded in the result's protocol, is part of the run's identity and shows in its protocol label.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from amst_bench.protocol import Protocol


def channels_last_module(module: nn.Module) -> nn.Module:
    """Conv weights in NHWC order, so the convolutions take the channels-last kernels (cuDNN,
    oneDNN); their outputs stay channels-last down the network."""
    return module.to(memory_format=torch.channels_last)


def channels_last_tensor(x: torch.Tensor) -> torch.Tensor:
    """A 4-D [B, C, H, W] input laid out channels-last; a 5-D [B, T, C, H, W] frame stack laid
    out so that the encoders' `flatten(0, 1)` is a channels-last view; others unchanged."""
    if not x.is_floating_point():
        return x
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 5:
        return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    return x


def channels_last_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {m: channels_last_tensor(x) for m, x in inputs.items()}


def _fused_supported(device: torch.device) -> bool:
    """Whether torch's SGD has a fused kernel for this device (CUDA; CPU in recent torch)."""
    probe = nn.Parameter(torch.zeros(1, device=device))
    probe.grad = torch.zeros_like(probe)
    try:
        torch.optim.SGD([probe], lr=0.0, fused=True).step()
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def fuse_optimizers(optimizers: Iterable[torch.optim.Optimizer], device: torch.device) -> str:
    """Under `fused_sgd`: every optimiser that has a fused kernel (SGD, and Adam(W) for methods
    whose original code used it) steps with it where the device has one, else with the foreach
    (multi-tensor) kernel, instead of one update per parameter. Applied to the optimisers a method
    built, whichever way it built them, so every method gets the same. Returns what ran."""
    fused = _fused_supported(device)
    for opt in optimizers:
        if fused and "fused" in opt.defaults:
            opt.defaults["fused"] = True
            opt._need_device_dtype_check_for_fused = True  # as the constructor sets it for fused=True
            for group in opt.param_groups:
                group["foreach"], group["fused"] = None, True
        elif "foreach" in opt.defaults:
            for group in opt.param_groups:
                group["foreach"] = True
    return "fused" if fused else "foreach"


def apply_backend_flags(protocol: Protocol) -> None:
    """cuDNN autotuning under `cudnn_benchmark` (it picks the fastest kernels per shape, which
    makes runs non-deterministic); called after seeding, which sets the official code's flags
    (deterministic, no autotuning), so a run without it keeps those."""
    if protocol.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False


def compile_encoders(
    encoders: Iterable[tuple[str, nn.Module]],
    inputs: dict[str, torch.Tensor],
    warn: Callable[[str], None],
) -> str:
    """`torch.compile` each (modality, encoder) in place, after proving on a throw-away copy that it
    compiles and runs forward and backward here on `inputs[modality]`. When it cannot (no
    compiler, an unsupported op), says so in one line and leaves every encoder as it was. Returns
    what ran, for the record: 'compiled' or 'not compiled: <reason>'."""
    encoders = list(encoders)
    try:
        with torch.random.fork_rng(devices=[]):  # the probe draws no random numbers of the run
            for modality, encoder in encoders:
                probe = copy.deepcopy(encoder)
                probe.compile()
                probe(inputs[modality]).float().sum().backward()
    except Exception as exc:  # any failure of the compiler stack: run uncompiled, say why
        reason = f"{type(exc).__name__}: " + (str(exc).strip().splitlines() or [""])[0][:200]
        warn(f"torch.compile could not compile the encoders here ({reason}); running them uncompiled")
        return f"not compiled: {reason}"
    for _, encoder in encoders:
        encoder.compile()
    return "compiled"


def speed_up_run(
    protocol: Protocol,
    device: torch.device,
    optimizers: Iterable[torch.optim.Optimizer],
    encoders: Iterable[tuple[str, nn.Module]],
    sample_inputs: Callable[[], dict[str, torch.Tensor]],
) -> dict[str, str]:
    """The run-level settings (fused optimisers, torch.compile) applied to a built method; returns
    what actually ran, for the result's record (empty when neither is asked for)."""
    record = {}
    if protocol.precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        record["cpu_bf16"] = "emulated"
        _warn_once("precision=bf16 on this CPU: it has no bfloat16 instructions (no AVX512-BF16 or AMX, "
              "oneDNN says), so autocast emulates them and training is several times slower, not faster; "
              "set precision=fp32 (speed=fast sets bf16)")
    if protocol.fused_sgd:
        record["optimizer_kernel"] = fuse_optimizers(optimizers, device)
    if protocol.compile:
        inputs = sample_inputs()
        if protocol.channels_last:
            inputs = channels_last_inputs(inputs)
        record["torch_compile"] = compile_encoders(encoders, inputs, _warn)
    return record


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (AVX512-BF16 or AMX): without them a bf16
    autocast on the CPU is emulated, far slower than float32 (measured: README, Performance)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the probe: assume it has them
        return True


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=2)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning about the machine, not the run: once per process (the grid's warm-up run and every
    run after it would each say it again)."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, UserWarning, stacklevel=2)
