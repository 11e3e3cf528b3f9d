"""Data-path hot spots: the on-device frame transforms, prepare_inputs per batch at the paper and
smoke budgets, the smoke budget's once-per-split settle step, and loading the tensor cache."""

from __future__ import annotations

import pytest
import torch

from amst_bench.data.augment import augment_frames, input_preparer, resize_frames
from amst_bench.data.cache import TensorCache
from tests.benchmarks.bench_inputs import cached_inputs

pytestmark = pytest.mark.bench
BUDGETS = {"paper": (224, 1), "smoke": (32, 4)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As the smoke profile runs (and steadier timings on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch():
    return cached_inputs(16)  # 48 frames: a quarter of a paper batch, to keep the session short


@pytest.mark.parametrize("size", [224, 32])
def test_augment_frames(benchmark, batch, size):
    frames, sizes = batch["visual"].flatten(0, 1), batch["visual_size"].flatten(0, 1)
    out = benchmark(augment_frames, frames, sizes, size)
    assert out.shape == (48, 3, size, size)


@pytest.mark.parametrize("size", [224, 32])
def test_resize_frames(benchmark, batch, size):
    frames, sizes = batch["visual"].flatten(0, 1), batch["visual_size"].flatten(0, 1)
    out = benchmark(resize_frames, frames, sizes, size)
    assert out.shape == (48, 3, size, size)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_prepare_inputs(benchmark, batch, budget, train):
    """Per batch, on inputs as the split hands them out (settled once, as iterate_batches does)."""
    prepare = input_preparer(*BUDGETS[budget])
    settled = prepare.settle(batch)
    out = benchmark(prepare, settled, train)
    assert out["visual"].shape[-1] == BUDGETS[budget][0]


def test_settle_smoke_budget(benchmark):
    """The smoke budget's once-per-split step on 100 clips (fbank pooled, frames shrunk)."""
    inputs = cached_inputs(100)
    out = benchmark(input_preparer(*BUDGETS["smoke"]).settle, inputs)
    assert out["visual"].shape[-2:] == (64, 85)


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory):
    cache = TensorCache(tmp_path_factory.mktemp("cache"), "bench")
    cache.save("k", {"inputs": cached_inputs(100), "labels": torch.zeros(100, dtype=torch.long)})
    return cache


def test_cache_load_and_first_batch(benchmark, cache_file):
    """Loading a 100-clip cache (about 80 MB) and cutting one batch from it."""

    def load_and_index():
        inputs = cache_file.load("k")["inputs"]
        return {m: t[:64].clone() for m, t in inputs.items()}

    out = benchmark(load_and_index)
    assert out["visual"].shape == (64, 3, 3, 256, 341)
