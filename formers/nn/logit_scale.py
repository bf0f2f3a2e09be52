"""A learnable temperature for contrastive logits: cosine similarities times exp(s), s trained.

Radford et al. 2021 (CLIP, section 2.5): "The learnable temperature parameter tau was initialized to
the equivalent of 0.07 from (Wu et al., 2018) and clipped to prevent scaling the logits by more than
100, which we found necessary to prevent training instability." The scale is stored as its log (as in
CLIP and Hugging Face's `CLIPModel.logit_scale`), so it stays positive and moves multiplicatively.

The clip is a clamp of the log in forward: above log(max_scale) the effective scale is max_scale and
the parameter receives no gradient from the loss (as with any clamp). OpenCLIP clamps the parameter
itself after each optimizer step instead; the two differ only once the bound is reached, and not
at all in the forward value.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LogitScale(nn.Module):
    """sim (..., N, M) -> sim * min(exp(log_scale), max_scale)."""

    def __init__(self, init: float = 1 / 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        if not 0 < init <= max_scale:
            raise ValueError(f"logit scale init={init} must lie in (0, max_scale={max_scale}]")
        self.max_log = math.log(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))

    def scale(self) -> torch.Tensor:
        """The effective multiplier, a 0-dim tensor (1 / temperature)."""
        return self.log_scale.clamp(max=self.max_log).exp()

    def forward(self, similarity: torch.Tensor) -> torch.Tensor:
        return similarity * self.scale().to(similarity.dtype)
