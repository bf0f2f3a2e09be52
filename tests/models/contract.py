"""The contract every model preset passes. A new family joins with one line in CASES."""

from __future__ import annotations

import dataclasses
from typing import Any

from formers.models import GPTConfig


@dataclasses.dataclass
class Case:
    name: str
    config: Any
    causal: bool  # outputs at t must not depend on inputs after t


TINY = dict(vocab_size=61, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0)

CASES = [
    Case("gpt-learned", GPTConfig(**TINY), causal=True),
    Case("gpt-rotary-swiglu-rms", GPTConfig(**TINY, position="rotary", activation="swiglu", norm="rmsnorm"), True),
    Case("gpt-alibi-post", GPTConfig(**TINY, position="alibi", norm_placement="post"), causal=True),
    Case("gpt-t5bias-relu", GPTConfig(**TINY, position="t5", activation="relu", bias=False), causal=True),
    Case("gpt-sinusoidal-explicit", GPTConfig(**TINY, position="sinusoidal", kernel="explicit"), causal=True),
]
