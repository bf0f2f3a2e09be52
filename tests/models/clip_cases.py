"""Tiny CLIP configurations for the contract tests: towers and pooling choices side by side."""

from __future__ import annotations

import dataclasses

import torch

from formers.models import BertConfig, CLIPConfig, CNNConfig, GPTConfig, ViTConfig

V, T = 53, 12  # vocabulary, longest text


def image_config(**changes) -> ViTConfig:
    base = dict(d_model=24, n_heads=2, n_layers=2, image_size=16, patch_size=4, n_channels=3, dropout=0.0)
    return ViTConfig(**{**base, **changes})


def cnn_config(**changes) -> CNNConfig:
    return CNNConfig(**{**dict(n_channels=3, widths=[8, 16], depths=[1, 1], groups=4), **changes})


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
    Case("vit-gpt-last", CLIPConfig(image=image_config(), text=text_config(), embed_dim=16)),
    Case("vit-mean-gpt-eos", CLIPConfig(image=image_config(pooling="mean", position="sincos2d"), text=text_config(),
                                        embed_dim=16, text_pooling="eos", eos_token_id=2)),
    Case("cnn-bert-mean", CLIPConfig(image=cnn_config(), text=bert_config(), embed_dim=8, text_pooling="mean")),
    Case("vit-bert-cls", CLIPConfig(image=image_config(), text=bert_config(), embed_dim=8, text_pooling="cls")),
]
IMAGE_SIZE = 16  # every case's images: ViT's image_size; the CNN reads any size


def pixels(config: CLIPConfig, b: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.randn(b, config.image.n_channels, IMAGE_SIZE, IMAGE_SIZE, generator=g)


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
