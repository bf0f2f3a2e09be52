"""PSNR, SSIM (against scikit-image), sharpness measures and the resample codec."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from formers.errors import ImageInputError
from formers.evaluate import best_resample_codec, high_frequency_energy, laplacian_variance, psnr, resample_codec, ssim


def pair(seed: int, c: int = 3, size: int = 24):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, c, size, size, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def test_psnr_known_values():
    x = torch.zeros(1, 1, 4, 4)
    assert psnr(x + 0.1, x).item() == pytest.approx(20.0, rel=1e-5)  # MSE 0.01 -> 10 log10(1 / 0.01)
    assert psnr(x + 10.0, x, data_range=255.0).item() == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-5)
    assert psnr(x, x).item() == pytest.approx(100.0)  # floored MSE, not infinity


@pytest.mark.parametrize(("seed", "c"), [(0, 1), (1, 3), (2, 3)])
def test_ssim_matches_scikit_image(seed, c):
    x, y = pair(seed, c)
    ours = ssim(x, y)
    for i in range(2):
        reference = structural_similarity(x[i].numpy().astype(np.float64), y[i].numpy().astype(np.float64),
                                          data_range=1.0, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
        # both in fp64 (ours returned as fp32): agreement to fp32 rounding
        assert ours[i].item() == pytest.approx(reference, rel=1e-6, abs=1e-6)


def test_ssim_known_values():
    x, _ = pair(3)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    # a constant shift c only changes the luminance term: (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1) < 1
    shifted = ssim(torch.full((1, 1, 11, 11), 0.2), torch.full((1, 1, 11, 11), 0.5)).item()
    c1 = 0.01**2
    assert shifted == pytest.approx((2 * 0.2 * 0.5 + c1) / (0.04 + 0.25 + c1), rel=1e-5)
    # contrast inverted around the mean: the structure term is -1 (up to the constants)
    a = torch.rand(1, 1, 11, 11)
    assert ssim(a, a.mean() * 2 - a).item() < -0.5


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(ImageInputError, match="window does not fit 8x8"):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ImageInputError, match="of one shape"):
        psnr(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


def test_blur_lowers_both_sharpness_measures():
    g = torch.Generator().manual_seed(0)
    sharp = (torch.rand(4, 1, 32, 32, generator=g) > 0.5).float()
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1)
    assert (laplacian_variance(blurred) < laplacian_variance(sharp)).all()
    assert (high_frequency_energy(blurred) < high_frequency_energy(sharp)).all()
    flat = torch.zeros(1, 3, 16, 16)
    assert laplacian_variance(flat).item() == 0.0


def test_high_frequency_energy_of_pure_tones():
    x = torch.arange(32.0)
    low = torch.cos(2 * math.pi * x / 16).expand(32, 32)[None, None]  # 1/16 cycles per pixel: 0.125 of Nyquist
    high = torch.cos(math.pi * x).expand(32, 32)[None, None]  # the Nyquist frequency itself
    assert high_frequency_energy(low).item() == pytest.approx(0.0, abs=1e-6)
    assert high_frequency_energy(high).item() == pytest.approx(1.0, abs=1e-6)


def test_resample_codec_at_full_size_and_depth_is_nearly_lossless():
    x, _ = pair(4, 1, 16)
    out = resample_codec(x, 16, 8)
    assert (out - x).abs().max().item() <= 0.5 / 255 + 1e-6  # only the 8-bit rounding is lost
    assert resample_codec(x, 4, 2).unique().numel() > 4  # bicubic upsampling mixes the 4 levels


def test_best_codec_keeps_within_its_budget_and_beats_worse_settings():
    x, _ = pair(5, 1, 16)
    best = best_resample_codec(x, 392)
    assert best["bits"] <= 392
    assert best["size"] ** 2 * best["bits_per_value"] == best["bits"]
    assert best["psnr"] >= psnr(resample_codec(x, 7, 8), x).mean().item() - 1e-4
