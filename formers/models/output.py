"""What every model returns."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class ModelOutput:
    logits: torch.Tensor | None  # (B, T, V) for language models; head-specific otherwise
    last_hidden_state: torch.Tensor  # (B, T, D) after the final norm
    encoder_last_hidden_state: torch.Tensor | None = None  # encoder-decoder models


@dataclasses.dataclass
class VisionOutput:
    """What every image encoder (ViT, CNN) returns for pixel_values (B, C, H, W)."""

    last_hidden_state: torch.Tensor  # (B, N, D) visual tokens, row-major over the grid; [CLS] first when present
    pooled: torch.Tensor  # (B, D) one vector per image
    logits: torch.Tensor | None = None  # (B, n_classes) when the model has a classifier head, else None
