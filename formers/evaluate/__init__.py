"""Evaluation measures that are not training losses."""

from formers.evaluate.image_quality import (
    best_resample_codec,
    high_frequency_energy,
    laplacian_variance,
    psnr,
    resample_codec,
    ssim,
)

__all__ = ["best_resample_codec", "high_frequency_energy", "laplacian_variance", "psnr", "resample_codec", "ssim"]
