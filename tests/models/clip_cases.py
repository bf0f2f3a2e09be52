"""Tiny CLIP configurations for the contract tests: towers and pooling choices side by side."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import Config
from formers.models import BertConfig, CLIPConfig, GPTConfig
from formers.models import clip as clip_module
from formers.registry import register_model

V, T = 53, 12  # vocabulary, longest text


# ---- a stand-in image tower until ViT lands on main: conv patches, mean pool ----------------------------------
@dataclasses.dataclass(kw_only=True)
class TinyImageConfig(Config):
    family: Literal["tiny_image"] = "tiny_image"
    d_model: int = 24
    n_channels: int = 3
    image_size: int = 16


@dataclasses.dataclass
class TinyVisionOutput:
    last_hidden_state: torch.Tensor
    pooled: torch.Tensor
    logits: torch.Tensor | None = None


@register_model("tiny_image", TinyImageConfig)
class TinyImage(nn.Module):
    def __init__(self, config: TinyImageConfig) -> None:
        super().__init__()
        self.config = config
        self.patches = nn.Conv2d(config.n_channels, config.d_model, 4, stride=4)
        self.mix = nn.Linear(config.d_model, config.d_model)

    def forward(self, pixel_values: torch.Tensor) -> TinyVisionOutput:
        tokens = self.patches(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D)
        hidden = self.mix(torch.tanh(tokens))
        return TinyVisionOutput(last_hidden_state=hidden, pooled=hidden.mean(1))


clip_module.IMAGE_FAMILIES = (*clip_module.IMAGE_FAMILIES, "tiny_image")


def image_config(**changes) -> Config:
    return TinyImageConfig(**changes)


def text_config(**changes) -> GPTConfig:
    """CLIP's text Transformer: GPT built causal, learned positions, pre-norm, final norm."""
    base = dict(vocab_size=V, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0, activation="quick_gelu")
    return GPTConfig(**{**base, **changes})


def bert_config(**changes) -> BertConfig:
    return BertConfig(**{**dict(vocab_size=V, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0),
                         **changes})


@dataclasses.dataclass
class Case:
    name: str
    config: CLIPConfig


CASES = [
    Case("gpt-last", CLIPConfig(image=image_config(), text=text_config(), embed_dim=16)),
    Case("gpt-eos", CLIPConfig(image=image_config(), text=text_config(), embed_dim=16, text_pooling="eos",
                               eos_token_id=2)),
    Case("bert-mean", CLIPConfig(image=image_config(), text=bert_config(), embed_dim=8, text_pooling="mean")),
    Case("bert-cls", CLIPConfig(image=image_config(), text=bert_config(), embed_dim=8, text_pooling="cls")),
]


def pixels(config: CLIPConfig, b: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    size = config.image.image_size
    return torch.randn(b, config.image.n_channels, size, size, generator=g)


def text_batch(config: CLIPConfig, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows of lengths 7, 9, 4, ...; each ends with token 2 (the end-of-text token of the
    eos cases), words drawn from ids >= 3, padding 0."""
    g = torch.Generator().manual_seed(4)
    lengths = [7, 9, 4, 12][:b] + [5] * max(0, b - 4)
    ids = torch.zeros(b, max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, : n - 1] = torch.randint(3, V, (n - 1,), generator=g)
        ids[i, n - 1] = 2
        mask[i, :n] = 1
    return ids, mask
