"""Image towers inside multimodal models: a nested config (a recipe's mapping) built through the registry.

A fusion model (VisualBERT, the co-attention model, the captioner, the late-fusion baseline) reads images
either through a tower built from `image:` (any family whose forward(pixel_values) returns a VisionOutput:
ViT, the CNN) or, without a tower, as visual features the caller computed (region features from a
detector, as VisualBERT's checkpoints expect: `visual_embeds` (B, N, visual_dim)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from formers.config import Config
from formers.errors import ImageInputError
from formers.models.clip import IMAGE_FAMILIES, tower_config
from formers.registry import build_model


def image_tower_config(value: Any, where: str) -> Config | None:
    """None (no tower), or an image family's config from plain data or a config object (CLIP's check)."""
    return None if value is None else tower_config(value, where, IMAGE_FAMILIES)


class VisualTokens(nn.Module):
    """pixel_values through the tower, or caller-given features: -> (B, N, visual_dim) tokens.

    Exactly one of the two must come; the other is refused with a message saying which the model reads.
    """

    def __init__(self, image: Config | None, visual_dim: int) -> None:
        super().__init__()
        self.tower = build_model(image) if image is not None else None
        self.visual_dim = tower_dim(image, visual_dim)  # with a tower, given features must be its tokens' width

    def forward(self, pixel_values: torch.Tensor | None, visual_embeds: torch.Tensor | None) -> torch.Tensor:
        if (pixel_values is None) == (visual_embeds is None):
            raise ImageInputError("pass exactly one of pixel_values (needs an image tower, config.image) or "
                                  "visual_embeds (B, N, visual_dim) features")
        if pixel_values is not None:
            if self.tower is None:
                raise ImageInputError("this model has no image tower (config.image is null): pass visual_embeds "
                                      f"(B, N, {self.visual_dim}) features instead of pixel_values")
            return self.tower(pixel_values).last_hidden_state  # (B, N, D_image)
        if visual_embeds.dim() != 3 or visual_embeds.shape[-1] != self.visual_dim:
            raise ImageInputError(f"visual_embeds must be (B, N, {self.visual_dim}) floats; got shape "
                                  f"{tuple(visual_embeds.shape)}")
        if not visual_embeds.is_floating_point():
            raise ImageInputError(f"visual_embeds must be floats; got {visual_embeds.dtype}")
        return visual_embeds


def tower_dim(image: Config | None, visual_dim: int) -> int:
    """Width of the visual tokens a model reads: the tower's d_model, or the given features' visual_dim."""
    return image.d_model if image is not None else visual_dim
