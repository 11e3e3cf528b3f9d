"""Text: tokenisation into the cache, the RoBERTa encoder from a local folder, text manifests."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from amst_bench.data.refs import DataLocations, make_adapter
from amst_bench.data.text import RobertaTextEncoder, load_tokenizer, tokenize
from amst_bench.errors import UserError
from amst_bench.protocol import get_profile
from tests.fixtures import write_jpeg, write_wav
from tests.helpers import cli, smoke_run
from tests.text_fixtures import WORDS, make_text_model


def test_tokenize_pads_and_marks_real_tokens(tmp_path):
    tokenizer = load_tokenizer(make_text_model(tmp_path / "tm"))
    tokens = tokenize(tokenizer, "the cat sat", max_length=8)
    assert tokens.shape == (2, 8) and tokens.dtype == torch.int32
    assert tokens[1].tolist() == [1, 1, 1, 1, 1, 0, 0, 0]  # <s> the cat sat </s> + padding
    assert tokens[0, 0].item() == 0 and tokens[0, 4].item() == 2 and tokens[0, 5].item() == 1
    assert tokenize(tokenizer, " ".join(WORDS * 3), max_length=8)[1].sum() == 8  # truncated


@pytest.mark.parametrize("with_weights", [False, True])
def test_roberta_encoder_trains_only_the_last_five_layers(tmp_path, with_weights):
    folder = make_text_model(tmp_path / "tm", layers=7, with_weights=with_weights)
    encoder = RobertaTextEncoder(folder, trainable_layers=5)
    assert encoder.pretrained is with_weights
    trainable = {n.split(".")[3] for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable == {"2", "3", "4", "5", "6"}  # encoder.layer.<i>: the last five of seven
    assert not any(p.requires_grad for n, p in encoder.named_parameters() if "embeddings" in n)
    tokens = torch.stack([tokenize(load_tokenizer(folder), "a happy dog", 10)] * 3)
    out = encoder(tokens)
    assert out.shape == (3, 32)
    out.sum().backward()
    assert encoder.model.encoder.layer[6].attention.self.query.weight.grad is not None
    assert encoder.model.encoder.layer[1].attention.self.query.weight.grad is None


def test_missing_text_model_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="--text-model .*: .* needs a local folder"):
        load_tokenizer(tmp_path / "nowhere")


def _text_manifest(root, per_class=5):
    rows = ["id,label,audio,visual,text"]
    texts = {"pos": "a happy day very good", "neg": "a sad night so bad"}
    for c, label in enumerate(texts):
        for k in range(per_class):
            sid = f"{label}{k}"
            write_wav(root / "wav" / f"{sid}.wav", freq=300 + 100 * c, seed=k)
            write_jpeg(root / "img" / f"{sid}.jpg", seed=10 * c + k)
            (root / "txt").mkdir(parents=True, exist_ok=True)
            (root / "txt" / f"{sid}.txt").write_text(texts[label] + (" dog" * k))
            rows.append(f"{sid},{label},wav/{sid}.wav,img/{sid}.jpg,txt/{sid}.txt")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_three_modality_manifest_caches_tokens(tmp_path):
    _text_manifest(tmp_path / "d")
    model = make_text_model(tmp_path / "tm")
    protocol = dataclasses.replace(get_profile("smoke"), text_model=str(model))
    loc = DataLocations(cache_dir=tmp_path / "c", options={"manifest": {"text_max_length": "12"}})
    adapter = make_adapter(f"manifest:{tmp_path / 'd'}", loc)
    assert adapter.check(protocol) == []
    bundle = adapter.load(protocol)
    assert bundle.modalities == ("audio", "text", "visual")
    assert bundle.train.inputs["text"].shape[1:] == (2, 12)
    assert bundle.info["text_vocab_size"] == len(load_tokenizer(model))
    # another tokenizer length is another cache
    loc2 = DataLocations(cache_dir=tmp_path / "c", options={"manifest": {"text_max_length": "16"}})
    make_adapter(f"manifest:{tmp_path / 'd'}", loc2).prepare(protocol)
    assert len(list((tmp_path / "c" / "manifest").glob("*.pt"))) == 2


def test_text_manifest_without_text_model_is_one_line_error(tmp_path):
    _text_manifest(tmp_path / "d")
    assert cli("data", "check", f"manifest:{tmp_path / 'd'}") == 2


def test_cli_runs_naive_and_amst_joint_on_three_modalities_with_roberta(tmp_path):
    """Paper encoders (ResNet18 + RoBERTa from a tiny config) for one epoch on a text manifest."""
    _text_manifest(tmp_path / "d", per_class=5)
    model = make_text_model(tmp_path / "tm")
    runs = smoke_run(
        tmp_path,
        "naive,amst-joint",
        f"manifest:{tmp_path / 'd'}",
        "--set",
        "encoder=resnet18",
        "--text-model",
        str(model),
        "--set",
        "manifest.text_max_length=10",
        "--set",
        "batch_size=8",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert sorted(r["method"] for r in runs) == ["amst-joint", "naive"]
    assert all(r["embedding_dim"] == 32 for r in runs)  # every embedding at RoBERTa's width
    assert all(r["text_encoder"] == {"path": str(model), "pretrained_weights": False} for r in runs)
