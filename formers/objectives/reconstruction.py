"""Autoencoding an image through a discrete bottleneck: the VQ-VAE's objective.

    batch {"pixel_values" (B, C, H, W) normalised} -> model -> reconstruction, quantiser terms
    loss = ImageLoss(reconstruction, pixels) [weighted L1/L2/perceptual/style/adversarial]
           + codebook term + beta * commitment (van den Oord et al. 2017, eq. 3)

The paper's reconstruction term is log p(x | z_q), a Gaussian likelihood: L2 (ImageLossConfig's default).
Besides the loss the result carries the quantiser's terms, the batch's code perplexity and its PSNR in
[0, 1] pixel units, so training curves show all of them.
"""

from __future__ import annotations

import torch
from torch import nn

from formers.evaluate.image_quality import psnr
from formers.objectives.image_losses import FeatureNetwork, ImageLoss, ImageLossConfig


class ImageReconstruction:
    """model(pixel_values) -> VQVAEOutput; see the module doc. `features` replaces the checkpoint the
    config names for the perceptual and style terms (tests and studies pass a network directly)."""

    def __init__(self, losses: ImageLossConfig | None = None, features: FeatureNetwork | None = None) -> None:
        self.image_loss = ImageLoss(losses or ImageLossConfig(), features)

    def __call__(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        pixels = batch["pixel_values"]
        out = model(pixels)
        terms = self.image_loss(out.reconstruction, pixels, discriminator=model.discriminator,
                                last_layer=model.last_layer)
        q = out.quantizer
        result = dict(terms)
        result["loss"] = terms["loss"] + q.loss
        result["commitment"], result["codebook"], result["perplexity"] = q.commitment.detach(), q.codebook, q.perplexity
        with torch.no_grad():
            result["psnr"] = psnr(model.to_unit_pixels(out.reconstruction), model.to_unit_pixels(pixels)).mean()
        return result
