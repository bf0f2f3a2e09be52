"""BERT: a bidirectional Transformer encoder pretrained by masked LM and next-sentence prediction.

Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding".

token + position + segment embeddings -> LayerNorm -> N post-norm blocks -> last_hidden_state
    -> MLM head (dense -> GELU -> LayerNorm -> decoder tied to the token embedding)  -> logits
    -> pooler (tanh dense on [CLS]) -> NSP head                                     -> nsp_logits

The heads are separate small modules reading `last_hidden_state` and `pooled`, so task heads
(classification, QA, VQA) sit on the same trunk; `encode` runs the trunk alone.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import check
from formers.models.gpt import init_weights
from formers.models.output import ModelOutput
from formers.nn import BlockConfig, check_token_ids, make_norm, make_positions, make_stack, padding_mask
from formers.nn.feedforward import GATED, activation_fn
from formers.nn.norms import NormKind
from formers.nn.positions import PositionKind
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class BertConfig(BlockConfig):
    family: Literal["bert"] = "bert"
    vocab_size: int = 256
    max_seq_len: int = 256  # learned positions: a hard limit
    type_vocab_size: int = 2  # segments: sentence A / sentence B
    n_layers: int = 4
    position: PositionKind = "learned"
    norm: NormKind = "layernorm"
    norm_eps: float = 1e-12  # BERT's (TF) epsilon; 1e-5 changes outputs of the real checkpoints
    norm_placement: Literal["pre", "post"] = "post"  # BERT keeps the original Transformer's post-norm
    tie_weights: bool = True  # the MLM decoder shares the token embedding
    init_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.vocab_size > 0, "BertConfig.vocab_size", self.vocab_size, "a positive int")
        check(self.max_seq_len > 0, "BertConfig.max_seq_len", self.max_seq_len, "a positive int")
        check(self.type_vocab_size > 0, "BertConfig.type_vocab_size", self.type_vocab_size, "a positive int")
        check(self.n_layers > 0, "BertConfig.n_layers", self.n_layers, "a positive int")


@dataclasses.dataclass
class BertOutput(ModelOutput):
    """ModelOutput plus the sentence-level outputs: `logits` are the MLM logits (B, T, V)."""

    pooled: torch.Tensor | None = None  # (B, D) tanh(dense(h_[CLS]))
    nsp_logits: torch.Tensor | None = None  # (B, 2): is-next / is-random


class Pooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector that NSP and sentence classifiers read."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, D)


class MLMHead(nn.Module):
    """dense -> activation -> norm -> decoder: a non-linear transform before the (tied) output embedding."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.d_model
        self.dense = nn.Linear(d, d)
        self.act = activation_fn(GATED.get(config.activation, config.activation))  # a gated FFN's gate activation
        self.norm = make_norm(config.norm, d, config.norm_eps, bias=config.bias)
        self.decoder = nn.Linear(d, config.vocab_size)  # its bias stays separate when the weight is tied

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(hidden))))  # (B, T, V)


@register_model("bert", BertConfig)
class Bert(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, d)
        self.positions = make_positions(
            config.position, d_model=d, d_head=config.head_dim, n_heads=config.n_heads,
            max_seq_len=config.max_seq_len, bidirectional=True,
        )
        # Post-norm blocks never normalise their input, so the embedding sum is normalised here.
        self.embedding_norm = make_norm(config.norm, d, config.norm_eps, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.stack = make_stack(config, config.n_layers, causal=False)
        self.pooler = Pooler(d)
        self.mlm_head = MLMHead(config)
        self.nsp_head = nn.Linear(d, 2)
        init_weights(self, config.init_std, config.n_layers)
        if config.tie_weights:
            self.mlm_head.decoder.weight = self.token_embedding.weight

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """token + segment (+ absolute position) embeddings (B, T, D), before the embedding norm: the text
        input that multimodal encoders (VisualBERT) join with other modalities' embeddings."""
        check_token_ids(input_ids, self.config.vocab_size)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        check_token_ids(token_type_ids, self.config.type_vocab_size)
        position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None]  # (1, T)
        x = self.token_embedding(input_ids) + self.segment_embedding(token_type_ids)  # (B, T, D)
        absolute = self.positions.absolute(position_ids)
        return x if absolute is None else x + absolute.to(x.dtype)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The trunk alone: input_ids (B, T), attention_mask (B, T) 1 = real -> last_hidden_state (B, T, D)."""
        x = self.embed(input_ids, token_type_ids)
        t = input_ids.shape[1]
        position_ids = torch.arange(t, device=input_ids.device)[None]  # (1, T)
        return self.stack(
            self.dropout(self.embedding_norm(x)),
            mask=padding_mask(attention_mask) if attention_mask is not None else None,
            bias=self.positions.bias(t, t, input_ids.device),
            rope=self.positions.rotary(position_ids),
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> BertOutput:
        """MLM logits (B, T, V), last_hidden_state (B, T, D), pooled (B, D), nsp_logits (B, 2)."""
        hidden = self.encode(input_ids, attention_mask, token_type_ids)
        pooled = self.pooler(hidden)
        return BertOutput(
            logits=self.mlm_head(hidden), last_hidden_state=hidden, pooled=pooled, nsp_logits=self.nsp_head(pooled)
        )
