"""The contract every model preset passes. A new family joins with one line in CASES (token models)
or IMAGE_CASES (image encoders: pixel_values in, VisionOutput out)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from formers.models import (
    BartConfig,
    BertConfig,
    CNNConfig,
    DALLEConfig,
    GPTConfig,
    LSTMConfig,
    T5Config,
    TransformerConfig,
    ViTConfig,
    VQVAEConfig,
)
from formers.nn.quantize import QuantizerConfig


def plain(ids: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Decoder-only and encoder-only models read the ids directly."""
    return dict(input_ids=ids, attention_mask=mask)


def seq2seq(ids: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Encoder-decoder models: a fixed source, the ids as the decoder's input (the side the battery probes)."""
    source = torch.arange(1, 8).expand(ids.shape[0], -1)
    return dict(input_ids=source, decoder_input_ids=ids, decoder_attention_mask=mask)


@dataclasses.dataclass
class Case:
    name: str
    config: Any
    causal: bool  # outputs at t must not depend on inputs after t
    inputs: Callable[..., dict] = plain  # (ids, mask) -> the model's keyword arguments


TINY = dict(vocab_size=61, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)
V11 = dict(activation="geglu", tie_weights=False, scale_decoder_output=False)  # T5 v1.1

CASES = [
    Case("gpt-learned", GPTConfig(**TINY), causal=True),
    Case("gpt-rotary-swiglu-rms", GPTConfig(**TINY, position="rotary", activation="swiglu", norm="rmsnorm"), True),
    Case("gpt-alibi-post", GPTConfig(**TINY, position="alibi", norm_placement="post"), causal=True),
    Case("gpt-t5bias-relu", GPTConfig(**TINY, position="t5", activation="relu", bias=False), causal=True),
    Case("gpt-sinusoidal-explicit", GPTConfig(**TINY, position="sinusoidal", kernel="explicit", scale_embedding=True),
         causal=True),
    Case("bert", BertConfig(**TINY), causal=False),
    Case("bert-rotary-pre-rms", BertConfig(**TINY, position="rotary", norm_placement="pre", norm="rmsnorm"), False),
    Case("transformer", TransformerConfig(**TINY), causal=True, inputs=seq2seq),
    Case("t5", T5Config(**TINY), causal=True, inputs=seq2seq),
    Case("t5-v1.1", T5Config(**TINY, **V11, n_decoder_layers=3, kernel="explicit"), causal=True, inputs=seq2seq),
    Case("bart", BartConfig(**TINY), causal=True, inputs=seq2seq),
    Case("lstm", LSTMConfig(vocab_size=61, d_model=32, n_layers=2, max_seq_len=32, dropout=0.0), causal=True),
    # 45 text ids + 16 image codes = 61; 6 text positions + a 4x4 grid of image positions
    Case("dalle", DALLEConfig(text_vocab_size=45, text_len=6, d_model=32, n_heads=4, n_layers=2, dropout=0.0,
                              vqvae=VQVAEConfig(image_size=16, hidden=8, n_res_blocks=0,
                                                quantizer=QuantizerConfig(codebook_size=16, code_dim=4))), causal=True),
]


@dataclasses.dataclass
class ImageCase:
    name: str
    config: Any  # an image encoder's config: it has n_channels, d_model and n_classes
    size: int  # side of the square test images


VIT = dict(image_size=16, patch_size=4, n_channels=3, d_model=32, n_heads=4, n_layers=2, dropout=0.0)
CNN = dict(n_channels=3, widths=[8, 16], groups=4)

IMAGE_CASES = [
    ImageCase("vit-cls-learned-head", ViTConfig(**VIT, n_classes=5), size=16),
    ImageCase("vit-mean-sincos-swiglu-rms", ViTConfig(**VIT, pooling="mean", position="sincos2d", activation="swiglu",
                                                      norm="rmsnorm"), size=16),
    ImageCase("vit-tanh-pooler-mask-post-explicit", ViTConfig(**VIT, pooler="tanh", mask_token=True,
                                                              norm_placement="post", kernel="explicit"), size=16),
    ImageCase("vit-clip-layout", ViTConfig(**VIT, patch_bias=False, embedding_norm=True, final_norm="pooled",
                                           activation="quick_gelu"), size=16),
    ImageCase("vit-conv-stem-head", ViTConfig(**VIT, stem="conv", pooling="mean", position="sincos2d", n_classes=5),
              size=16),
    ImageCase("cnn-groupnorm-head", CNNConfig(**CNN, depths=[1, 1], n_classes=5), size=12),
    ImageCase("cnn-batchnorm", CNNConfig(**CNN, depths=[2, 1], norm="batchnorm"), size=12),
]


@dataclasses.dataclass
class FusionCase:
    """A model reading text and images: input_ids (B, T) plus pixel_values (tower) or visual_embeds."""

    name: str
    config: Any  # has vocab_size, d_model, image (a tower's config or None) and visual_dim
    size: int = 16  # side of the square test images (with a tower)

    def visual(self, b: int, seed: int = 1) -> dict:
        g = torch.Generator().manual_seed(seed)
        if self.config.image is None:
            return {"visual_embeds": torch.randn(b, 5, self.config.visual_dim, generator=g)}
        return {"pixel_values": torch.randn(b, 3, self.size, self.size, generator=g)}


def _fusion_cases() -> list[FusionCase]:
    from formers.models import CoAttentionConfig, VisualBertConfig

    text = dict(vocab_size=61, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)
    vit = ViTConfig(**{**VIT, "d_model": 24, "n_heads": 2})
    cnn = CNNConfig(**CNN, depths=[1, 1])
    return [
        FusionCase("visualbert-embeds", VisualBertConfig(**text, visual_dim=12)),
        FusionCase("visualbert-vit", VisualBertConfig(**text, image=vit)),
        FusionCase("visualbert-cnn-explicit", VisualBertConfig(**text, image=cnn, kernel="explicit"), size=12),
        FusionCase("coattention-embeds", CoAttentionConfig(**{**text, "n_layers": 1}, visual_dim=12)),
        FusionCase("coattention-vit-pre-rms", CoAttentionConfig(**{**text, "n_layers": 1}, n_cross_layers=1, image=vit,
                                                                norm_placement="pre", norm="rmsnorm")),
    ]


FUSION_CASES = _fusion_cases()
