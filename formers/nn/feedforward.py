"""Position-wise feed-forward networks: plain (ReLU/GELU) and gated (SwiGLU, GeGLU, ReGLU).

Gated variants follow Shazeer 2020, "GLU Variants Improve Transformer".
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "gelu", "gelu_tanh", "quick_gelu", "silu", "swiglu", "geglu", "reglu"]
GATED = {"swiglu": "silu", "geglu": "gelu_tanh", "reglu": "relu"}


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the sigmoid approximation of GELU (Hendrycks & Gimpel 2016, section 2) that
    OpenAI's CLIP was trained with, so its checkpoints need it rather than the exact GELU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation_fn(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":  # GPT-2's "gelu_new"
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    if name == "silu":
        return nn.SiLU()
    raise ValueError(f"unknown activation {name!r}")


class FeedForward(nn.Module):
    """d_model -> d_ff -> activation -> d_model."""

    def __init__(self, d_model: int, d_ff: int, activation: str, *, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.act = activation_fn(activation)
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(self.act(self.up(x))))


class GatedFeedForward(nn.Module):
    """down(act(gate(x)) * up(x)): the gate decides, per unit, how much of `up` passes."""

    def __init__(self, d_model: int, d_ff: int, activation: str, *, bias: bool = True, dropout: float = 0.0):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=bias)
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.act = activation_fn(activation)
        self.dropout = nn.Dropout(dropout)
        self.down = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(self.act(self.gate(x)) * self.up(x)))


def make_feed_forward(
    activation: Activation, d_model: int, d_ff: int, *, bias: bool = True, dropout: float = 0.0
) -> nn.Module:
    """Build the feed-forward a config names; 'swiglu', 'geglu' and 'reglu' give the gated form."""
    if activation in GATED:
        return GatedFeedForward(d_model, d_ff, GATED[activation], bias=bias, dropout=dropout)
    return FeedForward(d_model, d_ff, activation, bias=bias, dropout=dropout)
