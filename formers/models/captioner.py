"""An image captioner: an image tower as the encoder, a Transformer decoder with cross-attention as the
text side (Vinyals et al. 2015's "Show and Tell" with the LSTM replaced by the Transformer decoder, as in
Cornia et al. 2020 and the captioning heads of BLIP / CoCa).

    pixel_values (B, C, H, W) -> image tower -> visual tokens (B, N, D_i) = the memory
    caption ids  (B, T)       -> token + learned positions -> N causal blocks, each cross-attending to
                                 the memory (the decoder block of formers.nn, d_memory = D_i)
                              -> final norm (pre-norm) -> LM head (tied to the token embedding) -> logits (B, T, V)

The model declares itself an encoder-decoder, so the one `formers.generate` (greedy, sampling, beam search,
KV cache) decodes it with the pixels as the "source": `generate(captioner, pixel_values, ...)` runs the
tower once, then the decoder token by token with its cross-attention keys and values cached.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from formers.config import check
from formers.errors import ConfigError
from formers.models.encoder_decoder import EncoderDecoderCache
from formers.models.gpt import init_weights
from formers.models.output import ModelOutput
from formers.models.towers import image_tower_config
from formers.nn import BlockConfig, KVCache, StaticKV, check_token_ids, make_positions, make_stack, padding_mask
from formers.registry import build_model, register_model


@dataclasses.dataclass(kw_only=True)
class CaptionerConfig(BlockConfig):
    family: Literal["captioner"] = "captioner"
    image: Any  # the image tower's config (vit or cnn); a mapping in recipes
    vocab_size: int = 256
    max_seq_len: int = 48  # caption tokens, the start token included
    n_layers: int = 3  # decoder blocks
    decoder_start_token_id: int = 5  # the Shapes word tokenizer's [BOS]
    tie_weights: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        self.image = image_tower_config(self.image, "CaptionerConfig.image")
        check(self.image is not None, "CaptionerConfig.image", None, "an image tower's config (vit or cnn)")
        for name in ("vocab_size", "max_seq_len", "n_layers"):
            check(getattr(self, name) > 0, f"CaptionerConfig.{name}", getattr(self, name), "a positive int")
        check(0 <= self.decoder_start_token_id < self.vocab_size, "CaptionerConfig.decoder_start_token_id",
              self.decoder_start_token_id, f"a token id below vocab_size={self.vocab_size}")

    @property
    def decoder_layers(self) -> int:
        return self.n_layers


@register_model("captioner", CaptionerConfig)
class Captioner(nn.Module):
    is_encoder_decoder: ClassVar[bool] = True  # `generate` encodes the pixels once, then decodes

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.positions = make_positions("learned", d_model=d, d_head=config.head_dim, n_heads=config.n_heads,
                                        max_seq_len=config.max_seq_len, bidirectional=False)
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = make_stack(config, config.n_layers, causal=True, cross=True, d_memory=config.image.d_model)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        init_weights(self, config.init_std, config.n_layers)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        self.image_tower = build_model(config.image)  # after init: the tower keeps its own

    def encode(self, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """pixel_values (B, C, H, W) -> memory (B, N, D_i); `attention_mask` is refused (every token is real)."""
        if attention_mask is not None:
            raise ConfigError("a captioner's source is an image: pass no attention_mask with pixel_values")
        return self.image_tower(pixel_values).last_hidden_state

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> ModelOutput:
        """Teacher-forced (or cached, step by step) decoding over the image: logits (B, T, V)."""
        if decoder_input_ids is None:
            raise ConfigError("decoder_input_ids is required: the caption shifted right, starting with "
                              f"decoder_start_token_id={self.config.decoder_start_token_id}")
        if encoder_outputs is None:
            if pixel_values is None:
                raise ConfigError("pass pixel_values or encoder_outputs (from model.encode)")
            encoder_outputs = self.encode(pixel_values, attention_mask)
        check_token_ids(decoder_input_ids, self.config.vocab_size)
        t = decoder_input_ids.shape[1]
        past = cache.length if cache is not None else 0
        position_ids = torch.arange(past, past + t, device=decoder_input_ids.device)[None]  # (1, T)
        x = self.token_embedding(decoder_input_ids) + self.positions.absolute(position_ids)  # (B, T, D)
        hidden = self.decoder(
            self.dropout(x),
            mask=padding_mask(decoder_attention_mask) if decoder_attention_mask is not None else None,
            cache=cache.self_attention if cache is not None else None,
            memory=encoder_outputs.to(x.dtype),
            cross_caches=cache.cross_attention if cache is not None else None,
        )
        return ModelOutput(logits=self.lm_head(hidden), last_hidden_state=hidden,
                           encoder_last_hidden_state=encoder_outputs)

    def new_cache(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> EncoderDecoderCache:
        c = self.config
        self_attention = KVCache(c.n_layers, batch, c.n_heads, max_len, c.head_dim, dtype=dtype, device=device)
        return EncoderDecoderCache(self_attention, [StaticKV() for _ in range(c.n_layers)])
