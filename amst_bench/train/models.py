"""Encoders (one per modality) and the fusion heads of the official AMST code.

Heads follow `code/models/fusion_modules.py` of CXianRen/AMST:
  lsum   one linear layer with bias per modality, logits summed           (LateSumHead)
  msum   one shared linear layer, logits of the present modalities averaged (SharedMeanHead)
  concat per-modality weight blocks without bias plus one shared bias b,
         logits = sum over present m of (W_m e_m + b/n), n = all modalities  (ConcatHead)
Every head returns the fused logits and the per-modality logits it summed or averaged.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from amst_bench.errors import UserError

# ----------------------------------------------------------------------------- initialisation


def official_init(module: nn.Module) -> None:
    """The official code's `weight_init`: Kaiming for convs, Xavier for linears, BN to identity."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def unimodal_heads(modalities, dim: int, classes: int) -> nn.ModuleDict:
    """One linear head (dim → classes) per modality, in the order given, with `official_init`."""
    heads = nn.ModuleDict({m: nn.Linear(dim, classes) for m in modalities})
    heads.apply(official_init)
    return heads


# ----------------------------------------------------------------------------- encoders


def _tiny_conv(in_channels: int, width: int = 16) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4),  # keep a coarse layout: class patterns need not be textures
        nn.Flatten(),
    )


class TinyAudioEncoder(nn.Module):
    """Two strided convs with BatchNorm over a [1, time, mel] 'image': the smoke-profile audio net."""

    def __init__(self, embedding_dim: int, in_channels: int = 1, width: int = 16):
        super().__init__()
        self.body = _tiny_conv(in_channels, width)
        self.proj = nn.Linear(2 * width * 16, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.body(x))


class TinyVisualEncoder(nn.Module):
    """Frames [T, 3, H, W] through a small 2D net, embeddings averaged over time (as ResNet18-V)."""

    def __init__(self, embedding_dim: int, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.body = _tiny_conv(in_channels, width)
        self.proj = nn.Linear(2 * width * 16, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feats = self.body(x.flatten(0, 1)).view(b, t, -1).mean(dim=1)
        return self.proj(feats)


class TinyTextEncoder(nn.Module):
    """Token embeddings mean-pooled over real tokens. Input: [B, L] ids with 0 as padding, or
    [B, 2, L] (ids, attention mask) as the tokenised cache stores them."""

    def __init__(self, embedding_dim: int, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.proj = nn.Linear(embedding_dim, embedding_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() == 3:
            ids, mask = tokens[:, 0].long(), tokens[:, 1].unsqueeze(-1).float()
        else:
            ids, mask = tokens.long(), (tokens != 0).unsqueeze(-1).float()
        pooled = (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.proj(pooled)


def _resnet18_trunk(in_channels: int) -> nn.Module:
    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()  # global average pool → 512-d
    return net


class OutConv(nn.Conv2d):
    """512 → d for text datasets (RoBERTa's 768): a bias-free 1×1 conv, as the official `out_conv`,
    so its gradient is 4-D (OGM-GE modulates it) and `official_init` gives it Kaiming fan-out.
    Applied to the pooled [B, 512] features; the code applies it before the average pooling, which
    is the same map (a linear map commutes with averaging)."""

    def __init__(self, embedding_dim: int):
        super().__init__(512, embedding_dim, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, :, None, None]).flatten(1)


class ResNet18AudioEncoder(nn.Module):
    """torchvision ResNet18 from scratch on the 1-channel fbank 'image' (official `_ResNet18_A`)."""

    def __init__(self, embedding_dim: int = 512):
        super().__init__()
        self.net = _resnet18_trunk(1)
        self.proj = nn.Identity() if embedding_dim == 512 else OutConv(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.net(x))


class ResNet18VisualEncoder(nn.Module):
    """ResNet18 per frame, pooled over time (official `_ResNet18_V`: avg-pool over T, H, W).

    Input layout is [B, T, C, H, W] (the official code takes [B, C, T, H, W]; same computation).
    """

    def __init__(self, embedding_dim: int = 512):
        super().__init__()
        self.net = _resnet18_trunk(3)
        self.proj = nn.Identity() if embedding_dim == 512 else OutConv(embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        feats = self.net(x.flatten(0, 1)).view(b, t, -1).mean(dim=1)
        return self.proj(feats)


def build_encoder(
    modality: str, kind: str, embedding_dim: int, input_shape: tuple[int, ...], vocab_size: int = 0,
    text_model: str = "", text_trainable_layers: int = 5,
) -> nn.Module:
    """One encoder for one modality; `kind` is the protocol's encoder family."""
    if kind == "tiny":
        if modality == "audio":
            enc: nn.Module = TinyAudioEncoder(embedding_dim, in_channels=input_shape[0])
        elif modality == "visual":
            enc = TinyVisualEncoder(embedding_dim, in_channels=input_shape[1])
        elif modality == "text":
            enc = TinyTextEncoder(embedding_dim, vocab_size=max(vocab_size, 2))
        else:
            raise UserError(f"no tiny encoder for modality {modality!r}")
    elif kind == "resnet18":
        if modality == "audio":
            enc = ResNet18AudioEncoder(embedding_dim)
        elif modality == "visual":
            enc = ResNet18VisualEncoder(embedding_dim)
        elif modality == "text":
            from amst_bench.data.text import RobertaTextEncoder

            return RobertaTextEncoder(text_model, text_trainable_layers)  # keeps its own initialisation
        else:
            raise UserError(f"no resnet18 encoder for modality {modality!r}")
    else:
        raise UserError(f"unknown encoder family {kind!r}; expected 'resnet18' or 'tiny'")
    enc.apply(official_init)
    return enc


# ----------------------------------------------------------------------------- heads

Logits = tuple[torch.Tensor, dict[str, torch.Tensor]]


class LateSumHead(nn.Module):
    """`lsum`: a linear layer with bias per modality; fused logits are their sum."""

    def __init__(self, modalities: tuple[str, ...], embedding_dim: int, num_classes: int):
        super().__init__()
        self.modalities = tuple(modalities)
        self.layers = nn.ModuleDict({m: nn.Linear(embedding_dim, num_classes) for m in modalities})
        self.apply(official_init)

    def forward(self, embeddings: dict[str, torch.Tensor]) -> Logits:
        parts = {m: self.layers[m](e) for m, e in embeddings.items()}
        return torch.stack(list(parts.values())).sum(0), parts


class SharedMeanHead(nn.Module):
    """`msum`: one shared linear layer; fused logits are the mean over present modalities."""

    def __init__(self, modalities: tuple[str, ...], embedding_dim: int, num_classes: int):
        super().__init__()
        self.modalities = tuple(modalities)
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.apply(official_init)

    def forward(self, embeddings: dict[str, torch.Tensor]) -> Logits:
        parts = {m: self.fc(e) for m, e in embeddings.items()}
        return torch.stack(list(parts.values())).mean(0), parts


class ConcatHead(nn.Module):
    """`concat`: W[e_1; …; e_n] + b split into blocks, W_m e_m + b/n per modality.

    With a subset of modalities present the sum keeps only their blocks: the paper's sub-head.
    """

    def __init__(self, modalities: tuple[str, ...], embedding_dim: int, num_classes: int):
        super().__init__()
        self.modalities = tuple(modalities)
        self.blocks = nn.ModuleDict(
            {m: nn.Linear(embedding_dim, num_classes, bias=False) for m in modalities}
        )
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.apply(official_init)

    def forward(self, embeddings: dict[str, torch.Tensor]) -> Logits:
        n = len(self.modalities)
        parts = {m: self.blocks[m](e) + self.bias / n for m, e in embeddings.items()}
        return torch.stack(list(parts.values())).sum(0), parts


HEADS: dict[str, type[nn.Module]] = {
    "lsum": LateSumHead,
    "msum": SharedMeanHead,
    "concat": ConcatHead,
}


def build_head(kind: str, modalities: tuple[str, ...], embedding_dim: int, num_classes: int):
    try:
        cls = HEADS[kind]
    except KeyError:
        raise UserError(f"unknown head {kind!r}; expected one of {', '.join(HEADS)}") from None
    return cls(tuple(modalities), embedding_dim, num_classes)


class Probes(nn.Module):
    """Linear probes on detached embeddings: the per-modality accuracy of the official code."""

    def __init__(self, modalities: tuple[str, ...], embedding_dim: int, num_classes: int):
        super().__init__()
        self.layers = nn.ModuleDict({m: nn.Linear(embedding_dim, num_classes) for m in modalities})
        self.apply(official_init)

    def forward(self, embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.layers[m](e.detach()) for m, e in embeddings.items() if m in self.layers}
