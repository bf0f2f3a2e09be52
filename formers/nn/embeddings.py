"""Token embeddings with id checking, and absolute / rotary position schemes.

Every position scheme answers three questions, each with None when it does not apply,
so a model asks all three once per forward and never branches on the scheme's kind:
  absolute(position_ids) -> (B, T, D) added to the token embeddings (learned, sinusoidal)
  rotary(position_ids)   -> a `Rope` that rotates queries and keys (Su et al. 2021)
  bias(t_q, t_k, device) -> (1, H, T_q, T_k) added to attention scores (ALiBi, T5; see
                            position_bias.py)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from formers.errors import SequenceTooLongError, TokenOutOfVocabError


def check_token_ids(input_ids: torch.Tensor, vocab_size: int) -> None:
    """Refuse ids outside [0, vocab_size) before they index (or silently wrap) an embedding.

    Skipped under torch.compile: reading the min/max back to Python would break the graph (and
    synchronise a GPU) on every forward; a compiled model's bad ids fail in the embedding instead."""
    if input_ids.numel() == 0 or torch.compiler.is_compiling():
        return
    lo, hi = int(input_ids.min()), int(input_ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise TokenOutOfVocabError(
            f"token id {bad} is outside the vocabulary [0, {vocab_size}); "
            "encode the text with this model's own tokenizer"
        )


class PositionScheme(nn.Module):
    """Interface: a scheme overrides the methods it provides; the rest return None."""

    position_limit: int | None = None  # positions 0 .. limit-1 exist; None: any position

    def absolute(self, position_ids: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotary(self, position_ids: torch.Tensor) -> Rope | None:
        return None

    def bias(self, t_q: int, t_k: int, device: torch.device) -> torch.Tensor | None:
        return None


def position_limit(model: nn.Module) -> int | None:
    """The most positions any of `model`'s learned position tables covers (None: no limit)."""
    limits = [m.position_limit for m in model.modules() if getattr(m, "position_limit", None) is not None]
    return min(limits, default=None)


class NoPositions(PositionScheme):
    """No position information: self-attention is then permutation-equivariant."""


class LearnedPositions(PositionScheme):
    """A trained vector per position (GPT-2, BERT); cannot go past `max_seq_len`."""

    def __init__(self, max_seq_len: int, d_model: int) -> None:
        super().__init__()
        self.position_limit = max_seq_len
        self.table = nn.Embedding(max_seq_len, d_model)

    def absolute(self, position_ids: torch.Tensor) -> torch.Tensor:
        limit = self.position_limit
        if position_ids.numel() and not torch.compiler.is_compiling() and int(position_ids.max()) >= limit:
            raise SequenceTooLongError(  # (not checked under compile, like check_token_ids)
                f"position {int(position_ids.max())} needs a sequence of {int(position_ids.max()) + 1} tokens "
                f"but learned positions stop at max_seq_len={limit}; shorten the input "
                "or use a model with rotary, ALiBi, T5 or sinusoidal positions"
            )
        return self.table(position_ids)


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """sin/cos at geometrically spaced frequencies (Vaswani et al. 2017, section 3.5)."""
    inv_freq = torch.exp(torch.arange(0, d_model, 2, device=positions.device).float() * (-math.log(10000.0) / d_model))
    angles = positions.float()[..., None] * inv_freq  # (..., D/2)
    table = torch.zeros(*positions.shape, d_model, device=positions.device)
    table[..., 0::2] = torch.sin(angles)
    table[..., 1::2] = torch.cos(angles[..., : d_model // 2])
    return table


class SinusoidalPositions(PositionScheme):
    """Fixed sinusoids, computed for any position (no length limit, nothing to train)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def absolute(self, position_ids: torch.Tensor) -> torch.Tensor:
        return sinusoid_table(position_ids, self.d_model)


class Rope:
    """cos/sin of each position's rotation angles, (B or 1, 1, T, D_h), ready to rotate q and k."""

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor) -> None:
        self.cos, self.sin = cos, sin

    def rotate(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, T, D_h): rotate each pair (x_i, x_{i+D/2}) by its angle (GPT-NeoX/Llama layout)."""
        x1, x2 = x.chunk(2, dim=-1)
        rotated_half = torch.cat((-x2, x1), dim=-1)
        return (x * self.cos + rotated_half * self.sin).to(x.dtype)


class RotaryPositions(PositionScheme):
    """Rotary position embedding: q.k then depends only on the offset between positions."""

    def __init__(self, d_head: int, base: float = 10000.0) -> None:
        super().__init__()
        if d_head % 2:
            raise ValueError(f"rotary positions need an even head size, got d_head={d_head}")
        inv_freq = 1.0 / (base ** (torch.arange(0, d_head, 2).float() / d_head))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def rotary(self, position_ids: torch.Tensor) -> Rope:
        if position_ids.dim() == 1:
            position_ids = position_ids[None]
        angles = position_ids.float()[..., None] * self.inv_freq.float()  # (B, T, D_h/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, T, D_h)
        return Rope(angles.cos(), angles.sin())
