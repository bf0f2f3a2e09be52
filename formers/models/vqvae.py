"""VQ-VAE: a convolutional autoencoder with a discrete bottleneck, the image tokenizer of DALL-E-style models.

van den Oord et al. 2017, "Neural Discrete Representation Learning", section 4.2 (the image model):

    pixels (B, C, H, W) -> encoder: n_downsample x [conv 4x4 / 2, ReLU], conv 3x3, residual blocks, ReLU
        -> 1x1 conv to code_dim -> z_e (B, D, H/f, W/f), f = 2^n_downsample
        -> quantiser (formers/nn/quantize.py): nearest code per cell -> codes (B, H/f, W/f), z_q
        -> 1x1 conv -> residual blocks, ReLU -> n_downsample x [ConvTranspose 4x4 / 2 (+ ReLU but last)]
        -> reconstruction (B, C, H, W), in the input's normalisation

Residual blocks are the paper's "ReLU, 3x3 conv, ReLU, 1x1 conv". Fashion-MNIST's 28x28 images become a
7x7 grid of codes with n_downsample = 2, Shapes' 32x32 an 8x8 grid. `encode` gives the codes (the image's
tokens), `decode` turns codes back into pixels, and `pixel_mean`/`pixel_std` (the normalisation the
model was trained in, filled in by the task from its data) let `to_unit_pixels` give [0, 1] images for
PSNR, SSIM and PNG files without the dataset at hand.

An optional PatchGAN (`discriminator`) is held by the model only so that one Trainer optimises and
checkpoints it beside the autoencoder (taming-transformers keeps VQGAN's in its loss module the same
way); `encode`/`decode`/`forward` never use it, and image_losses.ImageLoss is what does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.data.images import denormalize_pixels
from formers.errors import TokenOutOfVocabError
from formers.models.patchgan import PatchGAN, PatchGANConfig
from formers.nn.patches import check_pixels
from formers.nn.quantize import QuantizerConfig, QuantizerOutput, make_quantizer
from formers.registry import register_model


@dataclasses.dataclass(kw_only=True)
class VQVAEConfig(Config):
    family: Literal["vqvae"] = "vqvae"
    n_channels: int = 3
    image_size: int = 32  # square images; the code grid is image_size / 2^n_downsample per side
    hidden: int = 64  # channels of the encoder and decoder (the paper: 256)
    n_downsample: int = 2  # stride-2 convolutions: 28x28 -> 7x7 with 2
    n_res_blocks: int = 2
    quantizer: QuantizerConfig = dataclasses.field(default_factory=QuantizerConfig)
    pixel_mean: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5, 0.5])  # [0, 1] units, per channel
    pixel_std: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5, 0.5])
    discriminator: PatchGANConfig | None = None  # for adversarial training only (see the module doc)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_channels", "hidden", "n_downsample", "image_size"):
            check(getattr(self, name) > 0, f"VQVAEConfig.{name}", getattr(self, name), "a positive int")
        check(self.n_res_blocks >= 0, "VQVAEConfig.n_res_blocks", self.n_res_blocks, "an int >= 0")
        check(self.image_size % 2**self.n_downsample == 0, "VQVAEConfig.image_size", self.image_size,
              f"a multiple of 2^n_downsample = {2**self.n_downsample}")
        for name in ("pixel_mean", "pixel_std"):
            check(len(getattr(self, name)) == self.n_channels, f"VQVAEConfig.{name}", getattr(self, name),
                  f"one value per channel ({self.n_channels})")
        check(all(s > 0 for s in self.pixel_std), "VQVAEConfig.pixel_std", self.pixel_std, "positive values")
        check(self.discriminator is None or self.discriminator.n_channels == self.n_channels,
              "VQVAEConfig.discriminator.n_channels", getattr(self.discriminator, "n_channels", None),
              f"n_channels={self.n_channels}, the images it judges")

    @property
    def grid_size(self) -> int:
        """Codes per side of an image."""
        return self.image_size // 2**self.n_downsample

    @property
    def bits_per_image(self) -> float:
        """What one image's codes can carry: grid cells x log2(codebook size)."""
        return self.grid_size**2 * math.log2(self.quantizer.codebook_size)


@dataclasses.dataclass
class VQVAEOutput:
    reconstruction: torch.Tensor  # (B, C, H, W) in the input's normalisation
    codes: torch.Tensor  # (B, h, w) long
    quantizer: QuantizerOutput  # loss terms, perplexity


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))) (van den Oord et al. 2017, section 4.2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_encoder(config: VQVAEConfig) -> nn.Sequential:
    h = config.hidden
    layers: list[nn.Module] = []
    c_in = config.n_channels
    for _ in range(config.n_downsample):
        layers += [nn.Conv2d(c_in, h, 4, stride=2, padding=1), nn.ReLU()]
        c_in = h
    layers.append(nn.Conv2d(h, h, 3, padding=1))
    layers += [ResidualBlock(h) for _ in range(config.n_res_blocks)]
    layers += [nn.ReLU(), nn.Conv2d(h, config.quantizer.code_dim, 1)]
    return nn.Sequential(*layers)


def make_decoder(config: VQVAEConfig) -> nn.Sequential:
    h = config.hidden
    layers: list[nn.Module] = [nn.Conv2d(config.quantizer.code_dim, h, 3, padding=1)]
    layers += [ResidualBlock(h) for _ in range(config.n_res_blocks)]
    layers.append(nn.ReLU())
    for i in range(config.n_downsample):
        last = i == config.n_downsample - 1
        layers.append(nn.ConvTranspose2d(h, config.n_channels if last else h, 4, stride=2, padding=1))
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@register_model("vqvae", VQVAEConfig)
class VQVAE(nn.Module):
    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = make_encoder(config)
        self.quantizer = make_quantizer(config.quantizer)
        self.decoder = make_decoder(config)
        self.discriminator = PatchGAN(config.discriminator) if config.discriminator is not None else None

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's last weight: VQGAN's adaptive adversarial weight compares gradients there."""
        return self.decoder[-1].weight

    def _check(self, pixel_values: torch.Tensor) -> None:
        check_pixels(pixel_values, self.config.n_channels, size=self.config.image_size)

    def forward(self, pixel_values: torch.Tensor) -> VQVAEOutput:
        """pixel_values (B, C, H, W), normalised -> reconstruction, codes and the quantiser's terms."""
        self._check(pixel_values)
        z_e = self.encoder(pixel_values.to(self.encoder[0].weight.dtype))  # (B, D, h, w)
        q = self.quantizer(z_e)
        return VQVAEOutput(reconstruction=self.decoder(q.quantized), codes=q.codes, quantizer=q)

    @torch.no_grad()
    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, C, H, W), normalised -> codes (B, h, w) long, the image's tokens row by row."""
        self._check(pixel_values)
        z_e = self.encoder(pixel_values.to(self.encoder[0].weight.dtype))
        return self.quantizer.nearest(z_e)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) long -> reconstruction (B, C, H, W) in the training normalisation."""
        k = self.config.quantizer.codebook_size
        if codes.dtype != torch.long or codes.dim() != 3 or int(codes.min()) < 0 or int(codes.max()) >= k:
            raise TokenOutOfVocabError(f"codes must be long (B, h, w) with values in [0, {k}); got {codes.dtype} "
                                       f"{tuple(codes.shape)}: pass the ids encode() returns")
        z_q = self.quantizer.lookup(codes).to(self.decoder[0].weight.dtype)  # (B, D, h, w)
        return self.decoder(z_q)

    def to_unit_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, C, H, W) -> pixels in [0, 1] (clamped), for metrics and PNG files."""
        return denormalize_pixels(pixel_values.float(), self.config.pixel_mean, self.config.pixel_std)
