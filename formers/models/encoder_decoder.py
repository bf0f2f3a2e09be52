"""Encoder-decoder Transformers: the original, T5 and BART, as one model with three config presets.

source ids -> embed -> encoder stack (bidirectional)                  -> memory (B, S, D)
target ids -> embed -> decoder stack (causal self-attention, then
                       cross-attention over the memory)               -> LM head -> logits (B, T, V)

The three families differ only in choices made when the model is built, so each is a config
class whose defaults are that family's choices, and all three build `EncoderDecoder`:

| choice           | transformer (Vaswani 2017) | t5 (Raffel et al. 2020)          | bart (Lewis et al. 2020)     |
|------------------|----------------------------|----------------------------------|------------------------------|
| positions        | sinusoidal                 | relative buckets, per stack      | learned, offset 2            |
| norm / placement | LayerNorm, post            | RMSNorm, pre (+ final norm)      | LayerNorm, post              |
| embeddings       | x sqrt(d_model)            | plain                            | + LayerNorm (scale optional) |
| feed-forward     | ReLU                       | ReLU (v1.0) or gated GELU (v1.1) | GELU                         |
| attention scores | / sqrt(d_head)             | unscaled                         | / sqrt(d_head)               |
| biases           | yes                        | none                             | yes, + final_logits_bias     |
| LM head          | tied                       | tied x d_model**-0.5, or untied  | tied                         |

Every field stays overridable (`T5Config(activation="geglu", tie_weights=False)` is T5 v1.1).
The source and target share one token embedding in all three.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import nn

from formers.config import check
from formers.errors import ConfigError, SequenceTooLongError
from formers.models.gpt import init_weights
from formers.models.output import ModelOutput
from formers.nn import (
    BlockConfig,
    KVCache,
    PositionScheme,
    StaticKV,
    check_token_ids,
    make_norm,
    make_positions,
    make_stack,
    padding_mask,
)
from formers.nn.embeddings import LearnedPositions
from formers.nn.feedforward import Activation
from formers.nn.norms import NormKind
from formers.nn.position_bias import T5RelativePositions
from formers.nn.positions import PositionKind


@dataclasses.dataclass(kw_only=True)
class EncoderDecoderConfig(BlockConfig):
    """Fields shared by the three families; the subclasses below only change defaults."""

    vocab_size: int = 256  # one vocabulary for source and target
    max_seq_len: int = 256  # per side; a hard limit only with learned positions
    n_layers: int = 3  # encoder layers
    n_decoder_layers: int | None = None  # None = n_layers
    position: PositionKind = "sinusoidal"  # a separate scheme (and table) for encoder and decoder
    position_offset: int = 0  # learned positions: rows skipped at the start of the table (BART/fairseq: 2)
    relative_buckets: int = 32  # position="t5": buckets of the relative-position bias
    relative_max_distance: int = 128  # position="t5": offsets beyond this share the last bucket
    scale_embedding: bool = False  # token embeddings x sqrt(d_model) (Vaswani et al. 2017, section 3.4)
    embedding_norm: bool = False  # normalise the embedding sum, as post-norm BART does
    tie_weights: bool = True  # the LM head shares the token embedding (Press & Wolf 2017)
    scale_decoder_output: bool = False  # decoder output x d_model**-0.5 before the LM head (Mesh TF T5)
    lm_head_bias: bool = False  # a bias on the LM head (BART's final_logits_bias)
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0  # the first decoder input: generation starts here; labels shift right onto it
    init_std: float = 0.02
    embedding_init_std: float | None = None  # None = init_std; T5 uses 1.0 (its tied head rescales)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        check(self.vocab_size > 0, f"{name}.vocab_size", self.vocab_size, "a positive int")
        check(self.max_seq_len > 0, f"{name}.max_seq_len", self.max_seq_len, "a positive int")
        check(self.n_layers > 0, f"{name}.n_layers", self.n_layers, "a positive int")
        check(self.n_decoder_layers is None or self.n_decoder_layers > 0, f"{name}.n_decoder_layers",
              self.n_decoder_layers, "a positive int or null (= n_layers)")
        check(self.position_offset >= 0 and (self.position_offset == 0 or self.position == "learned"),
              f"{name}.position_offset", self.position_offset, "0, or a non-negative int with position='learned'")
        for field in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, field)
            check(0 <= value < self.vocab_size, f"{name}.{field}", value, f"an id in [0, vocab_size={self.vocab_size})")

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layers or self.n_layers


@dataclasses.dataclass(kw_only=True)
class TransformerConfig(EncoderDecoderConfig):
    """The original Transformer (Vaswani et al. 2017, "Attention Is All You Need")."""

    family: Literal["transformer"] = "transformer"
    position: PositionKind = "sinusoidal"
    norm_placement: Literal["pre", "post"] = "post"
    activation: Activation = "relu"
    scale_embedding: bool = True


@dataclasses.dataclass(kw_only=True)
class T5Config(EncoderDecoderConfig):
    """T5 (Raffel et al. 2020). v1.0 as given; v1.1 is activation="geglu", tie_weights=False,
    scale_decoder_output=False."""

    family: Literal["t5"] = "t5"
    position: PositionKind = "t5"
    norm: NormKind = "rmsnorm"
    norm_eps: float = 1e-6
    norm_placement: Literal["pre", "post"] = "pre"
    activation: Activation = "relu"
    bias: bool = False
    attention_scale: float | None = 1.0  # Mesh TF folds 1/sqrt(d_head) into the query initialisation instead
    scale_decoder_output: bool = True
    embedding_init_std: float | None = 1.0


@dataclasses.dataclass(kw_only=True)
class BartConfig(EncoderDecoderConfig):
    """BART (Lewis et al. 2020): a post-norm encoder-decoder pretrained as a denoising autoencoder."""

    family: Literal["bart"] = "bart"
    position: PositionKind = "learned"
    position_offset: int = 2
    norm_placement: Literal["pre", "post"] = "post"
    activation: Activation = "gelu"
    embedding_norm: bool = True
    lm_head_bias: bool = True
    pad_token_id: int = 1
    eos_token_id: int = 2
    decoder_start_token_id: int = 2  # BART starts decoding from </s>


class OffsetLearnedPositions(PositionScheme):
    """Learned positions read from row `offset` on (fairseq keeps the first rows for padding ids).

    Keeping the unused rows makes the table the same shape as the reference checkpoints.
    """

    def __init__(self, max_seq_len: int, d_model: int, offset: int) -> None:
        super().__init__()
        self.position_limit, self.offset = max_seq_len, offset
        self.learned = LearnedPositions(max_seq_len + offset, d_model)

    def absolute(self, position_ids: torch.Tensor) -> torch.Tensor:
        limit = self.position_limit
        if position_ids.numel() and not torch.compiler.is_compiling() and int(position_ids.max()) >= limit:
            raise SequenceTooLongError(
                f"a sequence of {int(position_ids.max()) + 1} tokens is longer than the model's position limit "
                f"max_seq_len={limit}; shorten the input"
            )
        return self.learned.absolute(position_ids + self.offset)


class EncoderDecoderCache:
    """What decoding keeps between steps: the decoder's self-attention keys/values (growing) and,
    per decoder layer, the cross-attention keys/values, projected from the memory once."""

    def __init__(self, self_attention: KVCache, cross_attention: list[StaticKV]) -> None:
        self.self_attention, self.cross_attention = self_attention, cross_attention

    @property
    def length(self) -> int:
        return self.self_attention.length

    def reorder(self, batch_indices: torch.Tensor) -> None:
        """Keep/duplicate batch rows (beam search)."""
        self.self_attention.reorder(batch_indices)
        for static in self.cross_attention:
            static.reorder(batch_indices)


class EncoderDecoder(nn.Module):
    # `generate` reads input_ids as the source: it calls `encode` once, then decodes with `encoder_outputs`.
    is_encoder_decoder: ClassVar[bool] = True

    def __init__(self, config: EncoderDecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.family = config.family  # one class serves three registered families
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.embed_scale = math.sqrt(d) if config.scale_embedding else 1.0
        self.encoder_positions = self._positions(bidirectional=True)
        self.decoder_positions = self._positions(bidirectional=False)
        self.encoder_embedding_norm = self._embedding_norm()
        self.decoder_embedding_norm = self._embedding_norm()
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = make_stack(config, config.n_layers, causal=False)
        self.decoder = make_stack(config, config.decoder_layers, causal=True, cross=True)
        self.head_scale = d**-0.5 if config.scale_decoder_output else 1.0
        self.lm_head = nn.Linear(d, config.vocab_size, bias=config.lm_head_bias)
        init_weights(self, config.init_std, config.n_layers + config.decoder_layers)
        if config.embedding_init_std is not None:
            nn.init.normal_(self.token_embedding.weight, std=config.embedding_init_std)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight

    def _positions(self, bidirectional: bool) -> PositionScheme:
        c = self.config
        if c.position == "t5":  # built here rather than by make_positions, to honour the bucket settings
            return T5RelativePositions(c.n_heads, bidirectional=bidirectional, num_buckets=c.relative_buckets,
                                       max_distance=c.relative_max_distance)
        if c.position_offset:
            return OffsetLearnedPositions(c.max_seq_len, c.d_model, c.position_offset)
        return make_positions(c.position, d_model=c.d_model, d_head=c.head_dim, n_heads=c.n_heads,
                              max_seq_len=c.max_seq_len, bidirectional=bidirectional)

    def _embedding_norm(self) -> nn.Module:
        c = self.config
        return make_norm(c.norm, c.d_model, c.norm_eps, bias=c.bias) if c.embedding_norm else nn.Identity()

    def _embed(self, ids: torch.Tensor, position_ids: torch.Tensor, positions: PositionScheme, norm: nn.Module):
        check_token_ids(ids, self.config.vocab_size)
        x = self.token_embedding(ids) * self.embed_scale  # (B, T, D)
        absolute = positions.absolute(position_ids)
        if absolute is not None:
            x = x + absolute.to(x.dtype)
        return self.dropout(norm(x))

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source ids (B, S), attention_mask (B, S) 1 = real token -> memory (B, S, D)."""
        s = input_ids.shape[1]
        position_ids = torch.arange(s, device=input_ids.device)[None]  # (1, S)
        x = self._embed(input_ids, position_ids, self.encoder_positions, self.encoder_embedding_norm)
        return self.encoder(
            x,
            mask=padding_mask(attention_mask) if attention_mask is not None else None,
            bias=self.encoder_positions.bias(s, s, input_ids.device),
            rope=self.encoder_positions.rotary(position_ids),
        )

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> torch.Tensor:
        """Target ids (B, T) over memory (B, S, D) -> decoder hidden states (B, T, D).

        memory_mask (B, S) is the source's attention mask; decoder_attention_mask covers (B, T_past + T).
        """
        t = decoder_input_ids.shape[1]
        past = cache.length if cache is not None else 0
        position_ids = torch.arange(past, past + t, device=decoder_input_ids.device)[None]  # (1, T)
        x = self._embed(decoder_input_ids, position_ids, self.decoder_positions, self.decoder_embedding_norm)
        return self.decoder(
            x,
            mask=padding_mask(decoder_attention_mask) if decoder_attention_mask is not None else None,
            bias=self.decoder_positions.bias(t, past + t, x.device),
            rope=self.decoder_positions.rotary(position_ids),
            cache=cache.self_attention if cache is not None else None,
            memory=memory,
            memory_mask=padding_mask(memory_mask) if memory_mask is not None else None,
            cross_caches=cache.cross_attention if cache is not None else None,
        )

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> ModelOutput:
        """Teacher-forced (or cached, one step at a time) decoding: logits (B, T_dec, V).

        `encoder_outputs` (B, S, D), from `encode`, skips the encoder; `attention_mask` is still the
        source's mask. The output's last_hidden_state is the decoder's; encoder_last_hidden_state the memory.
        """
        if decoder_input_ids is None:
            raise ConfigError(
                "decoder_input_ids is required: pass the target shifted right, starting with "
                f"decoder_start_token_id={self.config.decoder_start_token_id} (formers.objectives.shift_right)"
            )
        if encoder_outputs is None:
            if input_ids is None:
                raise ConfigError("pass input_ids (the source) or encoder_outputs (from model.encode)")
            encoder_outputs = self.encode(input_ids, attention_mask)
        hidden = self.decode(decoder_input_ids, encoder_outputs, attention_mask, decoder_attention_mask, cache)
        logits = self.lm_head(hidden * self.head_scale)
        return ModelOutput(logits=logits, last_hidden_state=hidden, encoder_last_hidden_state=encoder_outputs)

    def new_cache(self, batch: int, max_len: int, *, dtype: torch.dtype, device: torch.device) -> EncoderDecoderCache:
        """A decoder cache for `batch` rows of up to `max_len` target positions."""
        c, n = self.config, self.config.decoder_layers
        self_attention = KVCache(n, batch, c.n_heads, max_len, c.head_dim, dtype=dtype, device=device)
        return EncoderDecoderCache(self_attention, [StaticKV() for _ in range(n)])
