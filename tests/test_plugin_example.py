"""The README's "Write a method" example is a real file that registers, trains and does what it says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from amst_bench import registry
from amst_bench.options import build_config
from tests.helpers import first_batch, load_bundle, small_protocol, smoke_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "aux_loss_method.py"


@pytest.fixture
def aux_loss():
    spec = importlib.util.spec_from_file_location("aux_loss_method", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["aux_loss_method"] = module
    spec.loader.exec_module(module)
    yield registry.methods.get("aux-loss")
    registry.methods._items.pop("aux-loss", None)  # keep `--methods all` of other tests unchanged
    sys.modules.pop("aux_loss_method", None)


def test_the_readme_shows_the_example_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    assert f"```python\n{EXAMPLE.read_text()}```" in readme
    assert len(EXAMPLE.read_text().splitlines()) < 60


def test_the_extra_loss_is_weight_times_the_mean_unimodal_cross_entropy(aux_loss):
    from amst_bench.train.method import MethodContext
    from amst_bench.train.trainer import encoder_factory

    protocol = small_protocol()
    bundle = load_bundle("synthetic", protocol)
    ctx = MethodContext(bundle, protocol, torch.device("cpu"), encoder_factory(bundle, protocol))
    method = aux_loss(build_config(aux_loss, {"weight": "0.5"}), ctx)
    batch = first_batch(bundle)
    embeddings = method.encode(method.model["encoders"], batch.inputs, method.modalities)
    logits, parts = method.model["head"](embeddings)
    unimodal = [torch.nn.functional.cross_entropy(p, batch.labels) for p in parts.values()]
    expected = 0.5 * torch.stack(unimodal).mean()
    assert torch.allclose(method.extra_loss(batch, 0, embeddings, logits, parts), expected)
    assert set(parts) == {"audio", "visual"}


def test_the_example_trains_through_the_cli(aux_loss, tmp_path):
    [result] = smoke_run(tmp_path, "aux-loss", "synthetic", "--set", "aux-loss.weight=0.25")
    assert result["method"] == "aux-loss" and result["method_config"] == {"weight": 0.25}
