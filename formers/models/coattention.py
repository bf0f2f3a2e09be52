"""Two streams with co-attention (ViLBERT / LXMERT style): text and image in their own stacks, exchanging
information through cross-attention layers in both directions.

Lu et al. 2019, "ViLBERT: Pretraining Task-Agnostic Visiolinguistic Representations for Vision-and-Language
Tasks"; Tan & Bansal 2019, "LXMERT: Learning Cross-Modality Encoder Representations from Transformers".

    input_ids (B, T)  -> BERT's embedding + n_layers text-only blocks (the language encoder)  -> t (B, T, D)
    visual tokens     -> linear projection + LayerNorm (LXMERT's visual feature encoder)      -> v (B, N, D)
        (an image tower's last_hidden_state for pixel_values, or caller-given `visual_embeds`)
    n_cross_layers co-attention layers, each a pair of blocks built by `make_block(cross=True)`:
        t' = text_block(t,  memory=v)     self-attention over text, cross-attention to the image, FFN
        v' = image_block(v, memory=t)     self-attention over the image, cross-attention to the text, FFN
      both read the previous layer's states (ViLBERT's co-attention exchanges keys and values at once)
    -> last_hidden_state = t (B, T, D), visual_hidden = v (B, N, D)
    -> pooled = BERT's pooler on the text [CLS] (LXMERT's cross-modal output), MLM head on the text

The cross-attention is the decoder's own module: reading patches or reading text is the same layer with
another memory. `encode` returns the text stream, so the task heads of formers.models.heads (VQA, ITM)
sit on it unchanged, the visual inputs passed as keyword arguments.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from formers.config import check
from formers.errors import ImageInputError
from formers.models.bert import Bert, BertConfig, BertOutput
from formers.models.gpt import init_weights
from formers.models.towers import VisualTokens, image_tower_config, tower_dim
from formers.nn import make_block, make_norm, padding_mask
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class CoAttentionConfig(BertConfig):
    family: Literal["coattention"] = "coattention"
    n_layers: int = 2  # text-only layers before the streams meet (LXMERT's language encoder has 9)
    n_cross_layers: int = 2  # co-attention layer pairs (LXMERT: 5)
    image: Any = None  # an image tower's config (vit or cnn; a mapping in recipes), or None: visual_embeds given
    visual_dim: int = 512  # width of caller-given visual_embeds (ignored with a tower: its d_model is used)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.image = image_tower_config(self.image, "CoAttentionConfig.image")
        check(self.n_cross_layers > 0, "CoAttentionConfig.n_cross_layers", self.n_cross_layers, "a positive int")
        check(self.visual_dim > 0, "CoAttentionConfig.visual_dim", self.visual_dim, "a positive int")


@dataclasses.dataclass
class CoAttentionOutput(BertOutput):
    """last_hidden_state (B, T, D) the text stream; visual_hidden (B, N, D) the image stream."""

    visual_hidden: torch.Tensor | None = None


class CoAttentionLayer(nn.Module):
    """One exchange: each stream attends to itself, then to the other stream's previous states, then FFN."""

    def __init__(self, config: CoAttentionConfig) -> None:
        super().__init__()
        self.text_block = make_block(config, causal=False, cross=True)
        self.image_block = make_block(config, causal=False, cross=True)

    def forward(self, t: torch.Tensor, v: torch.Tensor, t_mask: torch.Tensor | None,
                v_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        t_new = self.text_block(t, mask=t_mask, memory=v, memory_mask=v_mask)
        v_new = self.image_block(v, mask=v_mask, memory=t, memory_mask=t_mask)
        return t_new, v_new


@register_model("coattention", CoAttentionConfig)
class CoAttention(Bert):
    def __init__(self, config: CoAttentionConfig) -> None:
        super().__init__(config)  # the text stream's embedding and single-modality layers, pooler, MLM head
        d = config.d_model
        self.visual_projection = nn.Linear(tower_dim(config.image, config.visual_dim), d)
        self.visual_norm = make_norm(config.norm, d, config.norm_eps, bias=config.bias)
        self.cross_layers = nn.ModuleList(CoAttentionLayer(config) for _ in range(config.n_cross_layers))
        init_weights(self.cross_layers, config.init_std, config.n_layers + config.n_cross_layers)
        init_weights(self.visual_projection, config.init_std, 1)
        self.visual_tokens = VisualTokens(config.image, config.visual_dim)  # after init: the tower keeps its own

    def encode_streams(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        visual_attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(text states (B, T, D), image states (B, N, D)) after the co-attention layers."""
        t = super().encode(input_ids, attention_mask, token_type_ids)  # (B, T, D) the language encoder
        visual = self.visual_tokens(pixel_values, visual_embeds)  # (B, N, D_v)
        if visual_attention_mask is not None and tuple(visual_attention_mask.shape) != tuple(visual.shape[:2]):
            raise ImageInputError(f"visual_attention_mask must be (B, N) = {tuple(visual.shape[:2])}, one entry "
                                  f"per visual token; got {tuple(visual_attention_mask.shape)}")
        v = self.dropout(self.visual_norm(self.visual_projection(visual.to(self.visual_projection.weight.dtype))))
        t_mask = padding_mask(attention_mask) if attention_mask is not None else None
        v_mask = padding_mask(visual_attention_mask) if visual_attention_mask is not None else None
        for layer in self.cross_layers:
            t, v = layer(t, v, t_mask, v_mask)
        return t, v

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,  # type: ignore[override]
               token_type_ids: torch.Tensor | None = None, **visual) -> torch.Tensor:
        """The text stream after co-attention (B, T, D): what task heads read (its [CLS] has seen the image)."""
        return self.encode_streams(input_ids, attention_mask, token_type_ids, **visual)[0]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **visual,
    ) -> CoAttentionOutput:
        t, v = self.encode_streams(input_ids, attention_mask, token_type_ids, **visual)
        pooled = self.pooler(t)
        return CoAttentionOutput(logits=self.mlm_head(t), last_hidden_state=t, pooled=pooled,
                                 nsp_logits=self.nsp_head(pooled), visual_hidden=v)
