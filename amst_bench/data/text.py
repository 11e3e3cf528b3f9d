"""Text: RoBERTa tokenisation for the cache and the RoBERTa encoder of the paper profile.

As the official AMST code (`code/data/*/extract_text_tokens.py`, `models/basic_model.py`
`TextEncoder`): the raw text is tokenised with the RoBERTa tokenizer, padded / truncated to a
fixed length (128 for UR-FUNNY and IEMOCAP, 256 for MVSA in the official scripts), and the
encoder is RoBERTa with every layer frozen except the last 5 encoder layers; the sample's
embedding is the first (<s>, CLS) token of the last hidden state.

Nothing is downloaded: `--text-model PATH` names a local folder with the tokenizer files and
`config.json`, plus the weights (`model.safetensors` / `pytorch_model.bin`) when there are any;
without weights the encoder is built from the config with random initialisation, and the result
records which.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn as nn

from amst_bench.errors import UserError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _folder(path: str | Path, what: str) -> Path:
    folder = Path(path) if path else None
    if folder is None or not folder.is_dir():
        raise UserError(
            f"--text-model {path or '(not given)'}: {what} needs a local folder with a "
            "RoBERTa tokenizer and config.json (nothing is downloaded)"
        )
    return folder


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    folder = _folder(path, "text tokenisation")
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"--text-model {folder}: cannot load a tokenizer ({exc})") from None


def tokenizer_signature(path: str | Path) -> str:
    """Hash of the tokenizer's files: a different tokenizer makes a different cache."""
    folder = _folder(path, "text tokenisation")
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name not in WEIGHT_FILES:
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


def tokenize(tokenizer, text: str, max_length: int) -> torch.Tensor:
    """[2, max_length] int32: token ids, attention mask (1 on real tokens)."""
    encoded = tokenizer(
        text, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    return torch.stack([encoded["input_ids"][0], encoded["attention_mask"][0]]).to(torch.int32)


def text_hidden_size(path: str | Path) -> int:
    from transformers import AutoConfig

    return int(
        AutoConfig.from_pretrained(str(_folder(path, "the text encoder")), local_files_only=True).hidden_size
    )


class RobertaTextEncoder(nn.Module):
    """RoBERTa, all layers frozen but the last `trainable_layers` encoder layers; CLS embedding."""

    def __init__(self, path: str | Path, trainable_layers: int = 5):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        folder = _folder(path, "the text encoder")
        self.pretrained = any((folder / f).is_file() for f in WEIGHT_FILES)
        if self.pretrained:
            self.model = AutoModel.from_pretrained(
                str(folder), local_files_only=True, add_pooling_layer=False
            )
        else:
            config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_config(config, add_pooling_layer=False)
        layers = self.model.encoder.layer
        if trainable_layers > len(layers):
            raise UserError(
                f"--text-model {folder}: {len(layers)} encoder layers, fewer than the "
                f"{trainable_layers} to fine-tune"
            )
        for p in self.model.parameters():
            p.requires_grad_(False)
        for layer in layers[len(layers) - trainable_layers :]:
            for p in layer.parameters():
                p.requires_grad_(True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        ids, mask = tokens[:, 0].long(), tokens[:, 1].long()
        return self.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
