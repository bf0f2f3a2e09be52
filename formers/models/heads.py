"""Task heads for any trunk: sequence classification/regression, token classification, span QA.

A head is a small module wrapping a pretrained trunk (BERT, a T5/BART encoder, GPT...) and
reading its last hidden state (B, T, D); the loss lives in `formers.objectives.classification`.
Transfer learning keeps the trunk and replaces the pretraining head (Devlin et al. 2019, sec. 4;
Howard & Ruder 2018), so every head's config stores the trunk's config: a checkpoint of a
fine-tuned classifier reloads with `formers.load` like any model.

    head = with_head(SequenceClassifier, formers.load("minilm/"), n_outputs=6, pooling="mean")
    head(input_ids, attention_mask).logits       # (B, 6)

Transformer trunks (Bert, EncoderDecoder, GPT) expose `encode(input_ids, attention_mask, ...)`,
the blocks without the pretraining heads; a head uses it when the trunk has it, because a 30k-word
MLM or LM projection costs as much as MiniLM's six blocks and a task head never reads it. Other
trunks (the LSTM) are called as usual and their `last_hidden_state` is read.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from formers.config import Config, check
from formers.models.output import ModelOutput
from formers.registry import MODELS, build_model, model_config_from_dict, register_model

Pooling = Literal["cls", "mean"]


@runtime_checkable
class Encoder(Protocol):
    """A trunk whose `encode` returns last_hidden_state (B, T, D) without any pretraining head."""

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw) -> torch.Tensor: ...


def hidden_states_of(trunk: nn.Module) -> Callable[..., torch.Tensor]:
    """trunk -> f(input_ids, attention_mask, **kw) -> (B, T, D); chosen once, when a head is built."""
    if isinstance(trunk, Encoder):
        return trunk.encode
    return functools.partial(_forward_hidden, trunk)  # a partial (not a lambda), so deepcopy follows the trunk


def _forward_hidden(trunk: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw):
    return trunk(input_ids, attention_mask=attention_mask, **kw).last_hidden_state


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens: hidden (B, T, D), mask (B, T) 1 = real -> (B, D) (sentence-transformers' pooling)."""
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The first token's state, (B, D): BERT's [CLS], trained by NSP to summarise the input."""
    return hidden[:, 0]


POOLING: dict[str, Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]] = {"cls": cls_pool, "mean": mean_pool}


@dataclasses.dataclass(kw_only=True)
class HeadConfig(Config):
    trunk: dict[str, Any]  # the trunk's own config, `trunk.config.to_dict()` (it names the trunk's "family")
    dropout: float = 0.1  # on the features the head reads (BERT's classifier dropout)

    def __post_init__(self) -> None:
        super().__post_init__()
        check("family" in self.trunk, f"{type(self).__name__}.trunk", sorted(self.trunk),
              "a model config with its 'family' (pass trunk.config.to_dict())")
        check(0.0 <= self.dropout < 1.0, f"{type(self).__name__}.dropout", self.dropout, "a value in [0, 1)")

    @property
    def d_model(self) -> int:
        return model_config_from_dict(self.trunk, where=f"{type(self).__name__}.trunk").d_model


def _trunk(config: HeadConfig, trunk: nn.Module | None) -> nn.Module:
    """The given (pretrained) trunk, or a fresh one built from the config (when a checkpoint is loaded)."""
    if trunk is not None:
        return trunk
    return build_model(model_config_from_dict(config.trunk, where=f"{type(config).__name__}.trunk"))


def new_linear(d_in: int, d_out: int, std: float = 0.02) -> nn.Linear:
    """A fresh output layer: small normal weights, zero bias (BERT's initialisation)."""
    layer = nn.Linear(d_in, d_out)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


@dataclasses.dataclass(kw_only=True)
class SequenceClassifierConfig(HeadConfig):
    family: Literal["sequence_classifier"] = "sequence_classifier"
    n_outputs: int = 2  # classes (cross-entropy), or real-valued targets (regression: MSE)
    pooling: Pooling = "cls"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_outputs > 0, "SequenceClassifierConfig.n_outputs", self.n_outputs, "a positive int")


@register_model("sequence_classifier", SequenceClassifierConfig)
class SequenceClassifier(nn.Module):
    """trunk -> pool (CLS or mean) -> dropout -> linear: logits (B, n_outputs), or scores for regression."""

    def __init__(self, config: SequenceClassifierConfig, trunk: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.trunk = _trunk(config, trunk)
        self.hidden_states = hidden_states_of(self.trunk)
        self.pool = POOLING[config.pooling]
        self.dropout = nn.Dropout(config.dropout)
        self.head = new_linear(config.d_model, config.n_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw) -> ModelOutput:
        hidden = self.hidden_states(input_ids, attention_mask, **kw)  # (B, T, D)
        features = self.pool(hidden, attention_mask)  # (B, D)
        return ModelOutput(logits=self.head(self.dropout(features)), last_hidden_state=hidden)


@dataclasses.dataclass(kw_only=True)
class TokenClassifierConfig(HeadConfig):
    family: Literal["token_classifier"] = "token_classifier"
    n_labels: int = 2  # tags per token (NER, POS)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n_labels > 0, "TokenClassifierConfig.n_labels", self.n_labels, "a positive int")


@register_model("token_classifier", TokenClassifierConfig)
class TokenClassifier(nn.Module):
    """trunk -> dropout -> linear on every token: logits (B, T, n_labels) (BERT's NER setup, sec. 5.3)."""

    def __init__(self, config: TokenClassifierConfig, trunk: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.trunk = _trunk(config, trunk)
        self.hidden_states = hidden_states_of(self.trunk)
        self.dropout = nn.Dropout(config.dropout)
        self.head = new_linear(config.d_model, config.n_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw) -> ModelOutput:
        hidden = self.hidden_states(input_ids, attention_mask, **kw)  # (B, T, D)
        return ModelOutput(logits=self.head(self.dropout(hidden)), last_hidden_state=hidden)


@dataclasses.dataclass(kw_only=True)
class SpanQAConfig(HeadConfig):
    family: Literal["span_qa"] = "span_qa"


@register_model("span_qa", SpanQAConfig)
class SpanQA(nn.Module):
    """Extractive QA (BERT on SQuAD, sec. 4.2): a start and an end score per token, logits (B, T, 2).

    `logits[..., 0]` scores each token as the answer's first token, `logits[..., 1]` as its last.
    """

    def __init__(self, config: SpanQAConfig, trunk: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.trunk = _trunk(config, trunk)
        self.hidden_states = hidden_states_of(self.trunk)
        self.dropout = nn.Dropout(config.dropout)
        self.head = new_linear(config.d_model, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw) -> ModelOutput:
        hidden = self.hidden_states(input_ids, attention_mask, **kw)  # (B, T, D)
        return ModelOutput(logits=self.head(self.dropout(hidden)), last_hidden_state=hidden)


def with_head(head_cls: type[nn.Module], trunk: nn.Module, **fields: Any) -> nn.Module:
    """Wrap a (pretrained) trunk in a new head: `with_head(SequenceClassifier, bert, n_outputs=3)`."""
    config_cls = MODELS[head_cls.family][0]
    return head_cls(config_cls(trunk=trunk.config.to_dict(), **fields), trunk=trunk)
