"""Seeding, device choice, and the versions/device/determinism record stored with every result."""

from __future__ import annotations

import platform
import random
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import torch

import amst_bench
from amst_bench.errors import UserError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    # As the official code's setup_seed: deterministic cuDNN, no autotuning.
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@contextmanager
def tf32(enabled: bool | None) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions forced on/off inside the block and restored
    after it; None leaves torch's settings alone (recorded either way by determinism_record)."""
    if enabled is None:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--set device={name}: CUDA is not available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--set device: unknown device {name!r}; expected auto, cpu or cuda") from None


def synchronize(device: torch.device) -> None:
    """Wait for queued accelerator work so that wall-clock timings are true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pkg(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    return {
        "amst_bench": _pkg("amst-bench") or amst_bench.__version__,  # an uninstalled checkout: its own
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _pkg("torchvision"),
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }


def device_record(device: torch.device) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": device.type,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        record["name"] = torch.cuda.get_device_name(device)
    return record


def determinism_record() -> dict[str, Any]:
    return {
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }
