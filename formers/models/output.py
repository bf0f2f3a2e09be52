"""What every model returns."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class ModelOutput:
    logits: torch.Tensor | None  # (B, T, V) for language models; head-specific otherwise
    last_hidden_state: torch.Tensor  # (B, T, D) after the final norm
    encoder_last_hidden_state: torch.Tensor | None = None  # encoder-decoder models
