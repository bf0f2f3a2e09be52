"""GPT: a decoder-only Transformer language model (Radford et al. 2018, 2019).

token embedding (+ absolute positions) -> N causal blocks -> final norm -> LM head.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from formers.config import check
from formers.models.output import ModelOutput
from formers.nn import BlockConfig, KVCache, check_token_ids, combine, make_positions, make_stack, padding_mask
from formers.nn.embeddings import PositionScheme
from formers.nn.positions import PositionKind
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class GPTConfig(BlockConfig):
    family: Literal["gpt"] = "gpt"
    vocab_size: int = 256
    max_seq_len: int = 256  # context length trained for; a hard limit only with learned positions
    n_layers: int = 4
    position: PositionKind = "learned"
    tie_weights: bool = True  # share the token embedding with the LM head (Press & Wolf 2017)
    # False builds blocks without the causal rule, for the prefix LM (Raffel et al. 2020): training passes its
    # prefix mask to forward(mask=...); a prompt given alone is then read bidirectionally, as its prefix.
    causal: bool = True
    init_std: float = 0.02
    # token embeddings x sqrt(d_model) before positions are added (Vaswani et al. 2017, section 3.4): with
    # fixed sinusoidal positions of norm ~sqrt(d_model / 2), the tokens would otherwise be drowned out
    scale_embedding: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.vocab_size > 0, "GPTConfig.vocab_size", self.vocab_size, "a positive int")
        check(self.max_seq_len > 0, "GPTConfig.max_seq_len", self.max_seq_len, "a positive int")
        check(self.n_layers > 0, "GPTConfig.n_layers", self.n_layers, "a positive int")


def init_weights(model: nn.Module, std: float, n_layers: int) -> None:
    """GPT-2 init: N(0, std) everywhere; residual output projections scaled by 1/sqrt(2N)."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            scaled = name.endswith(("attention.sublayer.out", "feed_forward.sublayer.down"))
            nn.init.normal_(module.weight, mean=0.0, std=std / math.sqrt(2 * n_layers) if scaled else std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)


@register_model("gpt", GPTConfig)
class GPT(nn.Module):
    def __init__(self, config: GPTConfig, positions: PositionScheme | None = None) -> None:
        """`positions` replaces the scheme `config.position` names, for models that build GPT with a position
        module of their own (DALL-E's text + image-grid positions, formers/models/dalle.py)."""
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = positions if positions is not None else make_positions(
            config.position, d_model=config.d_model, d_head=config.head_dim, n_heads=config.n_heads,
            max_seq_len=config.max_seq_len, bidirectional=not config.causal,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.stack = make_stack(config, config.n_layers, causal=config.causal)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        init_weights(self, config.init_std, config.n_layers)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The trunk without the LM head -> last_hidden_state (B, T, D) (text towers, task heads)."""
        check_token_ids(input_ids, self.config.vocab_size)
        t = input_ids.shape[1]
        past = cache.length if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device)[None]
        x = self.token_embedding(input_ids)  # (B, T, D)
        if self.config.scale_embedding:
            x = x * math.sqrt(self.config.d_model)
        absolute = self.positions.absolute(position_ids)
        if absolute is not None:
            x = x + absolute.to(x.dtype)
        return self.stack(
            self.dropout(x),
            mask=combine(mask, padding_mask(attention_mask) if attention_mask is not None else None),
            bias=self.positions.bias(t, past + t, input_ids.device),
            rope=self.positions.rotary(position_ids),
            cache=cache,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
    ) -> ModelOutput:
        """input_ids (B, T); attention_mask (B, T_past + T), 1 = real token; returns logits (B, T, V).

        `mask` (B, 1, T, T_past + T) bool, True = may attend, is combined with `attention_mask`
        (e.g. `prefix_lm_mask` for a model built with causal=False).
        """
        h = self.encode(input_ids, attention_mask, position_ids, cache, mask)
        return ModelOutput(logits=self.lm_head(h), last_hidden_state=h)

    def new_cache(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> KVCache:
        c = self.config
        return KVCache(c.n_layers, batch, c.n_heads, max_len, c.head_dim, dtype=dtype, device=device)
