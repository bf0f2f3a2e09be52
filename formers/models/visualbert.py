"""VisualBERT: one BERT encoder over text tokens and visual tokens together (a single stream).

Li et al. 2019, "VisualBERT: A Simple and Performant Baseline for Vision and Language".

    input_ids (B, T)  -> BERT's text embedding (token + segment + position)               -> (B, T, D)
    visual tokens     -> linear projection + visual segment + visual position (row 0)     -> (B, N, D)
        (an image tower's last_hidden_state for pixel_values, or caller-given `visual_embeds`)
    concat (B, T + N, D) -> LayerNorm -> the BERT stack, one attention mask over both  -> last_hidden_state
        -> pooler ([CLS]) -> pooled;  MLM head over the text positions -> logits (B, T, V)

A modality is a new input embedding, not a new stack: the model *is* a Bert (same trunk, heads and
names) with a `VisualEmbedding` beside the text embedding. Visual tokens all sit at visual position 0
(Hugging Face's VisualBertEmbeddings without image_text_alignment), so their order carries no meaning
unless the tower puts it into the features (a ViT's own patch positions do). `encode` is the joint pass,
so the task heads of formers.models.heads (VQA, ITM) sit on it with the visual inputs as keyword
arguments; read the [CLS] (pooling "cls"): "mean" pooling reads the text mask and does not fit T + N states.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from formers.config import check
from formers.errors import ImageInputError
from formers.models.bert import Bert, BertConfig, BertOutput
from formers.models.towers import VisualTokens, image_tower_config, tower_dim
from formers.nn import padding_mask
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class VisualBertConfig(BertConfig):
    family: Literal["visualbert"] = "visualbert"
    image: Any = None  # an image tower's config (vit or cnn; a mapping in recipes), or None: visual_embeds given
    visual_dim: int = 512  # width of caller-given visual_embeds (ignored with a tower: its d_model is used)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.image = image_tower_config(self.image, "VisualBertConfig.image")
        check(self.visual_dim > 0, "VisualBertConfig.visual_dim", self.visual_dim, "a positive int")
        check(self.position == "learned", "VisualBertConfig.position", self.position,
              "'learned' (visual tokens take a learned visual position embedding beside the text's)")

    @property
    def visual_width(self) -> int:
        return tower_dim(self.image, self.visual_dim)


@dataclasses.dataclass
class VisualBertOutput(BertOutput):
    """last_hidden_state (B, T + N, D): the text positions first, then the visual tokens; logits (B, T, V)
    the MLM logits of the text positions."""

    n_text: int = 0  # T: where the visual tokens start in last_hidden_state

    @property
    def text_hidden(self) -> torch.Tensor:
        return self.last_hidden_state[:, : self.n_text]  # (B, T, D)

    @property
    def visual_hidden(self) -> torch.Tensor:
        return self.last_hidden_state[:, self.n_text :]  # (B, N, D)


class VisualEmbedding(nn.Module):
    """Visual tokens (B, N, visual_dim) -> projection + segment (type 1 by default) + position (B, N, D)."""

    def __init__(self, config: VisualBertConfig) -> None:
        super().__init__()
        d = config.d_model
        self.projection = nn.Linear(config.visual_width, d)
        self.segment = nn.Embedding(config.type_vocab_size, d)
        self.position = nn.Embedding(config.max_seq_len, d)  # only row 0 is read; the reference keeps the table

    def forward(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        b, n, _ = tokens.shape
        if token_type_ids is None:
            token_type_ids = torch.ones(b, n, dtype=torch.long, device=tokens.device)
        x = self.projection(tokens.to(self.projection.weight.dtype))  # (B, N, D)
        return x + self.segment(token_type_ids) + self.position.weight[0].to(x.dtype)


@register_model("visualbert", VisualBertConfig)
class VisualBert(Bert):
    def __init__(self, config: VisualBertConfig) -> None:
        super().__init__(config)
        self.visual_embedding = VisualEmbedding(config)
        # Li et al. start the visual segment and position tables as copies of the text ones
        # (Hugging Face's special_visual_initialize, on by default)
        with torch.no_grad():
            nn.init.normal_(self.visual_embedding.projection.weight, std=config.init_std)  # BERT's init
            nn.init.zeros_(self.visual_embedding.projection.bias)
            self.visual_embedding.segment.weight.copy_(self.segment_embedding.weight)
            self.visual_embedding.position.weight.copy_(self.positions.table.weight)
        self.visual_tokens = VisualTokens(config.image, config.visual_dim)  # built after init: the tower keeps its own

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The text alone through the same stack (B, T, D): the unimodal pass of ITC (formers.models.vlp)."""
        return super().encode(input_ids, attention_mask, token_type_ids)

    def encode(  # type: ignore[override]  (the same call as Bert's, plus the visual inputs)
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        visual_attention_mask: torch.Tensor | None = None,
        visual_token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T + N, D) states of the text positions then the visual tokens: the trunk alone, what task heads
        (formers.models.heads: VQA, image-text matching) read, with the visual inputs as keyword arguments."""
        visual = self.visual_tokens(pixel_values, visual_embeds)  # (B, N, D_v)
        b, t = input_ids.shape
        n = visual.shape[1]
        if visual_attention_mask is not None and tuple(visual_attention_mask.shape) != (b, n):
            raise ImageInputError(f"visual_attention_mask must be (B, N) = {(b, n)}, one entry per visual token; "
                                  f"got {tuple(visual_attention_mask.shape)}")
        x = torch.cat([self.embed(input_ids, token_type_ids),
                       self.visual_embedding(visual, visual_token_type_ids)], dim=1)  # (B, T + N, D)
        mask = None
        if attention_mask is not None or visual_attention_mask is not None:
            ones = torch.ones(b, 1, dtype=torch.long, device=input_ids.device)
            text_mask = attention_mask if attention_mask is not None else ones.expand(b, t)
            vis_mask = visual_attention_mask if visual_attention_mask is not None else ones.expand(b, n)
            mask = padding_mask(torch.cat([text_mask.long(), vis_mask.long()], dim=1))  # (B, 1, 1, T + N)
        return self.stack(self.dropout(self.embedding_norm(x)), mask=mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        pixel_values: torch.Tensor | None = None,
        visual_embeds: torch.Tensor | None = None,
        visual_attention_mask: torch.Tensor | None = None,
        visual_token_type_ids: torch.Tensor | None = None,
    ) -> VisualBertOutput:
        hidden = self.encode(
            input_ids, attention_mask, token_type_ids, pixel_values=pixel_values, visual_embeds=visual_embeds,
            visual_attention_mask=visual_attention_mask, visual_token_type_ids=visual_token_type_ids,
        )
        t = input_ids.shape[1]
        pooled = self.pooler(hidden)
        return VisualBertOutput(logits=self.mlm_head(hidden[:, :t]), last_hidden_state=hidden, pooled=pooled,
                                nsp_logits=self.nsp_head(pooled), n_text=t)
