"""PatchGAN: a convolutional discriminator that scores every patch of an image as real or generated.

Isola et al. 2017 ("Image-to-Image Translation with Conditional Adversarial Networks", pix2pix, section
3.2.2), as VQGAN uses it (Esser et al. 2021): a few stride-2 4x4 convolutions, so each output logit sees
one receptive-field-sized patch; the adversarial loss then judges local texture and sharpness, which
pixel losses leave blurry, while the pixel/perceptual terms keep the image's global layout.

    pixels (B, C, H, W) -> conv 4x4/2, LeakyReLU(0.2)
        -> (n_layers - 1) x [conv 4x4/2, norm, LeakyReLU]  -> conv 4x4/1, norm, LeakyReLU
        -> conv 4x4/1 -> logits (B, 1, H', W'): one real-vs-generated logit per patch

GroupNorm replaces pix2pix's BatchNorm by default, for the reason the CNN encoder gives (formers/models/
cnn.py): a patch's score should not depend on the other images in its batch, and a discriminator here
sees a batch of real images and a batch of reconstructions in separate calls.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.nn.patches import check_pixels
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class PatchGANConfig(Config):
    family: Literal["patchgan"] = "patchgan"
    n_channels: int = 3
    width: int = 64  # channels of the first convolution; doubled per stride-2 layer up to 8x
    n_layers: int = 3  # stride-2 convolutions: each halves the grid and doubles the patch a logit sees
    norm: Literal["groupnorm", "batchnorm"] = "groupnorm"
    groups: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_channels", "width", "n_layers", "groups"):
            check(getattr(self, name) > 0, f"PatchGANConfig.{name}", getattr(self, name), "a positive int")
        if self.norm == "groupnorm":
            check(self.width % self.groups == 0, "PatchGANConfig.groups", self.groups,
                  f"a divisor of width={self.width}")


def _norm(config: PatchGANConfig, channels: int) -> nn.Module:
    return nn.GroupNorm(config.groups, channels) if config.norm == "groupnorm" else nn.BatchNorm2d(channels)


@register_model("patchgan", PatchGANConfig)
class PatchGAN(nn.Module):
    def __init__(self, config: PatchGANConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(config.n_channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        c_in = w
        for i in range(1, config.n_layers + 1):
            c_out = w * min(2**i, 8)
            stride = 2 if i < config.n_layers else 1  # the last widening layer keeps the grid (pix2pix)
            layers += [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1, bias=False), _norm(config, c_out),
                       nn.LeakyReLU(0.2)]
            c_in = c_out
        layers.append(nn.Conv2d(c_in, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN's init (Radford et al. 2016), which pix2pix and VQGAN keep
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, C, H, W) float -> logits (B, 1, H', W'), one per patch (higher = judged real)."""
        check_pixels(pixel_values, self.config.n_channels)
        return self.layers(pixel_values.to(self.layers[0].weight.dtype))
