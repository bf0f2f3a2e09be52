"""An LSTM language model: the recurrent baseline the studies compare Transformers against.

Hochreiter & Schmidhuber 1997; the stacked, dropout-between-layers LM of Zaremba et al. 2014.

token embedding -> N-layer LSTM -> final LayerNorm -> LM head (tied to the embedding)

It takes GPT's forward signature and returns the same ModelOutput, so the Trainer, the
objectives and `generate` use it unchanged. Its "cache" is the recurrent state: a fixed
(h, c) pair per layer, whatever the length, which is the LSTM's whole memory of the past.
"""

from __future__ import annotations

import dataclasses
import functools
from contextlib import nullcontext
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.errors import ConfigError
from formers.models.output import ModelOutput
from formers.nn import check_token_ids
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class LSTMConfig(Config):
    family: Literal["lstm"] = "lstm"
    vocab_size: int = 256
    d_model: int = 256  # embedding and hidden width
    n_layers: int = 2
    dropout: float = 0.1  # on embeddings, between layers and before the head
    max_seq_len: int = 256  # not a limit (the state has no length); data builders read it as they read GPT's
    tie_weights: bool = True  # share the token embedding with the LM head (Press & Wolf 2017)
    init_std: float = 0.02  # embedding init; LSTM weights keep PyTorch's uniform(+-1/sqrt(d_model))

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "d_model", "n_layers", "max_seq_len"):
            check(getattr(self, name) > 0, f"LSTMConfig.{name}", getattr(self, name), "a positive int")
        check(0.0 <= self.dropout < 1.0, "LSTMConfig.dropout", self.dropout, "a value in [0, 1)")


class LSTMState:
    """The recurrent state (h, c), each (L, B, D), standing in for a KV cache in `generate`."""

    def __init__(self, n_layers: int, batch: int, d_model: int, *, dtype, device) -> None:
        self.h = torch.zeros(n_layers, batch, d_model, dtype=dtype, device=device)
        self.c = torch.zeros_like(self.h)
        self.length = 0  # tokens read so far

    def reorder(self, batch_indices: torch.Tensor) -> None:
        """Keep/duplicate batch rows (beam search)."""
        self.h, self.c = self.h.index_select(1, batch_indices), self.c.index_select(1, batch_indices)


@register_model("lstm", LSTMConfig)
class LSTM(nn.Module):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        inner_dropout = config.dropout if config.n_layers > 1 else 0.0  # torch warns on dropout with one layer
        self.rnn = nn.LSTM(config.d_model, config.d_model, config.n_layers, batch_first=True, dropout=inner_dropout)
        self.final_norm = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=config.init_std)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        else:
            nn.init.normal_(self.lm_head.weight, std=config.init_std)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: LSTMState | None = None,
        mask: torch.Tensor | None = None,
    ) -> ModelOutput:
        """input_ids (B, T); attention_mask (B, T_past + T), 1 = real token; returns logits (B, T, V).

        Padding tokens leave the state untouched, so left-padded prompts read exactly like
        unpadded ones. `position_ids` are accepted and unused: order is the recurrence itself.
        """
        if mask is not None:
            raise ConfigError("the LSTM reads strictly left to right and takes no attention `mask`; "
                              "use a Transformer (e.g. GPT with causal=False) for prefix-LM masks")
        check_token_ids(input_ids, self.config.vocab_size)
        b, t = input_ids.shape
        x = self.dropout(self.token_embedding(input_ids))  # (B, T, D)
        state = (cache.h, cache.c) if cache is not None else None
        keep = attention_mask[:, -t:].bool() if attention_mask is not None else None
        with _recurrence_precision(x):
            if state is not None:  # a cache made under autocast holds bf16 states
                state = tuple(s.to(x.dtype) for s in state)
            if keep is None or bool(keep.all()):
                h, state = self.rnn(x, state)  # the fused whole-sequence path
            else:
                h, state = self._masked_scan(x, keep, state)
        if cache is not None:
            (cache.h, cache.c), cache.length = state, cache.length + t
        h = self.final_norm(self.dropout(h))
        return ModelOutput(logits=self.lm_head(h), last_hidden_state=h)

    def _masked_scan(self, x: torch.Tensor, keep: torch.Tensor, state):
        """One step at a time, carrying the state unchanged over padding (B, T) == False."""
        if state is None:
            zeros = x.new_zeros(self.config.n_layers, x.shape[0], self.config.d_model)
            state = (zeros, zeros)
        outputs = []
        for i in range(x.shape[1]):
            out, new = self.rnn(x[:, i : i + 1], state)  # out (B, 1, D)
            k = keep[:, i][None, :, None]  # (1, B, 1): broadcasts over layers and width
            state = tuple(torch.where(k, n, s) for n, s in zip(new, state, strict=True))
            outputs.append(out)
        return torch.cat(outputs, dim=1), state

    def new_cache(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> LSTMState:
        """The recurrent state `generate` threads through its steps (`max_len` is not needed: it has no length)."""
        return LSTMState(self.config.n_layers, batch, self.config.d_model, dtype=dtype, device=device)


@functools.cache
def _onednn_bf16() -> bool:
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _recurrence_precision(x: torch.Tensor):
    """Autocast off for the recurrence on CPUs whose oneDNN has no bf16 (AVX2 only, or ONEDNN_MAX_CPU_ISA=AVX2).

    torch's CPU autocast casts the LSTM into oneDNN's bf16 kernel without asking whether oneDNN has one, and
    there it fails ("could not create a primitive descriptor for the LSTM"). The recurrence then runs in the
    dtype of its input (fp32 under autocast); the LM head after it still autocasts."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and not _onednn_bf16():
        return torch.autocast("cpu", enabled=False)
    return nullcontext()
