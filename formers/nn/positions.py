"""Build the position scheme a config names."""

from __future__ import annotations

from typing import Literal

from formers.nn.embeddings import (
    LearnedPositions,
    NoPositions,
    PositionScheme,
    RotaryPositions,
    SinusoidalPositions,
)
from formers.nn.position_bias import ALiBiPositions, T5RelativePositions

PositionKind = Literal["learned", "sinusoidal", "rotary", "alibi", "t5", "none"]


def make_positions(
    kind: PositionKind, *, d_model: int, d_head: int, n_heads: int, max_seq_len: int, bidirectional: bool
) -> PositionScheme:
    if kind == "learned":
        return LearnedPositions(max_seq_len, d_model)
    if kind == "sinusoidal":
        return SinusoidalPositions(d_model)
    if kind == "rotary":
        return RotaryPositions(d_head)
    if kind == "alibi":
        return ALiBiPositions(n_heads)
    if kind == "t5":
        return T5RelativePositions(n_heads, bidirectional=bidirectional)
    if kind == "none":
        return NoPositions()
    raise ValueError(f"unknown position kind {kind!r}")
