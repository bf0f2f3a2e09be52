"""DALL-E: one decoder-only Transformer over a caption's tokens followed by an image's tokens.

Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation". An image becomes a grid of discrete codes
through a VQ-VAE (DALL-E's dVAE; here formers/models/vqvae.py), and a GPT models the joint sequence

    [t_1 ... t_text_len | i_1 ... i_{h*w}]     t: text ids, padded to text_len; i: code ids + text_vocab_size

so that sampling the image part after a caption draws an image of it. The vocabulary is split in two
ranges: ids [0, text_vocab_size) are text, [text_vocab_size, text_vocab_size + K) are the K image codes.
Positions are learned per text position and per image row + column (`TextImagePositions`), given to the
same GPT the text side uses (formers/models/gpt.py); nothing else about the blocks changes. DALL-E pads
the text with a padding token per position; here the one [PAD] token plus its text position does that.

The VQ-VAE travels inside the model, frozen (in eval mode whatever the model's mode, no gradients), so a
checkpoint turns captions into pixels on its own: `image_tokens` encodes pixels (the tokenizer's
normalisation) into ids, `decode_image_tokens` turns sampled ids back into [0, 1] images. Sampling
itself is formers/text_to_image.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from formers.config import check
from formers.errors import TokenOutOfVocabError
from formers.models.gpt import GPT, GPTConfig
from formers.models.output import ModelOutput
from formers.models.vqvae import VQVAE, VQVAEConfig
from formers.nn import BlockConfig, KVCache
from formers.nn.text_image_positions import TextImagePositions
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class DALLEConfig(BlockConfig):
    family: Literal["dalle"] = "dalle"
    text_vocab_size: int = 96  # the caption tokenizer's vocabulary; image ids start here
    text_len: int = 16  # text tokens per sequence (captions padded to it)
    n_layers: int = 4
    init_std: float = 0.02
    tie_weights: bool = True  # one table for input embedding and output head, as GPT
    # the image tokenizer; a task fills it in from a trained checkpoint. A mapping in recipes.
    vqvae: VQVAEConfig = dataclasses.field(default_factory=VQVAEConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.text_vocab_size > 0, "DALLEConfig.text_vocab_size", self.text_vocab_size, "a positive int")
        check(self.text_len > 1, "DALLEConfig.text_len", self.text_len, "an int > 1 (a start token and some text)")
        check(self.n_layers > 0, "DALLEConfig.n_layers", self.n_layers, "a positive int")
        check(self.vqvae.discriminator is None, "DALLEConfig.vqvae.discriminator", self.vqvae.discriminator,
              "null: the tokenizer inside DALL-E only encodes and decodes")

    @property
    def grid(self) -> tuple[int, int]:
        return self.vqvae.grid_size, self.vqvae.grid_size

    @property
    def n_image_tokens(self) -> int:
        """Image tokens per sequence: the code grid's cells."""
        return self.vqvae.grid_size**2

    @property
    def vocab_size(self) -> int:
        return self.text_vocab_size + self.vqvae.quantizer.codebook_size

    @property
    def seq_len(self) -> int:
        return self.text_len + self.n_image_tokens

    def gpt_config(self) -> GPTConfig:
        """The Transformer: this config's block fields, the joint vocabulary, its sequence length."""
        blocks: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(BlockConfig)}
        return GPTConfig(**blocks, vocab_size=self.vocab_size, max_seq_len=self.seq_len, n_layers=self.n_layers,
                         tie_weights=self.tie_weights, init_std=self.init_std)


@register_model("dalle", DALLEConfig)
class DALLE(nn.Module):
    generates_images = True  # `formers generate` writes images for it (formers/text_to_image.py)

    def __init__(self, config: DALLEConfig) -> None:
        super().__init__()
        self.config = config
        positions = TextImagePositions(config.text_len, config.grid, config.d_model)
        self.transformer = GPT(config.gpt_config(), positions=positions)  # GPT's init covers the positions too
        self.vqvae = VQVAE(config.vqvae).eval().requires_grad_(False)

    def train(self, mode: bool = True) -> DALLE:
        super().train(mode)
        self.vqvae.eval()  # frozen: its quantiser must not move its codebook when the Transformer trains
        return self

    @property
    def image_token_range(self) -> tuple[int, int]:
        """[start, end) of the image ids in the joint vocabulary."""
        return self.config.text_vocab_size, self.config.vocab_size

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> ModelOutput:
        """input_ids (B, T) joint ids, text first -> logits (B, T, text_vocab_size + K)."""
        return self.transformer(input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache)

    def new_cache(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> KVCache:
        return self.transformer.new_cache(batch, max_len, dtype=dtype, device=device)

    @torch.no_grad()
    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, C, H, W) in the VQ-VAE's normalisation -> image ids (B, h*w), row-major."""
        return self.vqvae.encode(pixel_values).flatten(1) + self.config.text_vocab_size

    @torch.no_grad()
    def decode_image_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """image ids (B, h*w) in the joint vocabulary -> images (B, C, H, W) in [0, 1]."""
        start, end = self.image_token_range
        if ids.shape[-1] != self.config.n_image_tokens or int(ids.min()) < start or int(ids.max()) >= end:
            raise TokenOutOfVocabError(f"image ids must be (B, {self.config.n_image_tokens}) with values in "
                                       f"[{start}, {end}); got shape {tuple(ids.shape)}, values "
                                       f"{int(ids.min())}..{int(ids.max())}")
        h, w = self.config.grid
        codes = (ids - start).reshape(len(ids), h, w)  # (B, h, w)
        return self.vqvae.to_unit_pixels(self.vqvae.decode(codes))
