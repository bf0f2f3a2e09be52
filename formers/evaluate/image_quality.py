"""How close a reconstructed image is to the original, how sharp an image is, and a baseline codec.

Every function takes float images (B, C, H, W) in [0, data_range] (pixels in [0, 1] by default, not
normalised by a dataset's mean/std: see `formers.data.images.denormalize_pixels`) and returns one value
per image (B,), so a caller averages over a test set as it likes.

  psnr                 10 log10(L^2 / MSE), in dB
  ssim                 structural similarity with an 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004)
  laplacian_variance   variance of the Laplacian: edges make it large, blur makes it small (Pech-Pacheco 2000)
  high_frequency_energy  share of the spectrum's energy (DC excluded) above a radial frequency cutoff
  resample_codec       the image at s x s pixels of b bits each, upsampled back: a codec of s*s*b*C bits
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.nn import functional as F

from formers.errors import ImageInputError

SSIM_WINDOW = 11  # Wang et al. 2004, section III.C: an 11x11 circular-symmetric Gaussian, sigma 1.5
SSIM_SIGMA = 1.5


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape or x.dim() != 4:
        raise ImageInputError(f"images must be two (B, C, H, W) tensors of one shape; got {tuple(x.shape)} and "
                              f"{tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (B,), in dB; identical images score 100 dB (MSE floored at 1e-10)."""
    _check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3)).clamp(min=1e-10 * data_range**2)
    return (10 * torch.log10(data_range**2 / mse)).float()


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """A normalised 1-D Gaussian (size,), centred: the separable factor of SSIM's 2-D window."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(images: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Weighted local means, 'valid' region only: (B, C, H, W) -> (B, C, H - w + 1, W - w + 1)."""
    c = images.shape[1]
    kernel = (window[:, None] * window[None, :]).to(images)  # (w, w)
    return F.conv2d(images, kernel.expand(c, 1, *kernel.shape), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, *, window_size: int = SSIM_WINDOW,
         sigma: float = SSIM_SIGMA, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean structural similarity per image (B,) (Wang et al. 2004, eq. 13, Gaussian-weighted statistics).

    Local means, variances and covariance come from the Gaussian window; the SSIM map is averaged over the
    positions where the window fits inside the image and over channels. This is what
    `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)` computes (the tests compare the two)."""
    _check_pair(x, y)
    if min(x.shape[-2:]) < window_size:
        raise ImageInputError(f"SSIM's {window_size}x{window_size} window does not fit {x.shape[-2]}x{x.shape[-1]} "
                              "images; pass a smaller window_size (odd) or larger images")
    x, y = x.double(), y.double()  # variances are differences of near-equal means: fp64 keeps them exact
    window = gaussian_window(window_size, sigma)
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    var_x = _filter(x * x, window) - mu_x**2
    var_y = _filter(y * y, window) - mu_y**2
    cov = _filter(x * y, window) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2  # stabilise the divisions (eq. 13)
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3)).float()


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Variance of the 3x3 Laplacian of each image's mean over channels (B,): a blur measure
    (Pech-Pacheco et al. 2000); a blurred copy of an image always scores lower than the image."""
    grey = images.float().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    response = F.conv2d(grey, LAPLACIAN.to(grey)[None, None])  # (B, 1, H-2, W-2)
    return response.flatten(1).var(dim=1)


def high_frequency_energy(images: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Share of each image's spectral energy, DC excluded, above `cutoff` x the Nyquist frequency (B,)."""
    grey = images.float().mean(dim=1)  # (B, H, W)
    power = torch.fft.fft2(grey - grey.mean(dim=(1, 2), keepdim=True)).abs().pow(2)  # (B, H, W)
    h, w = grey.shape[-2:]
    fy, fx = torch.fft.fftfreq(h).abs()[:, None], torch.fft.fftfreq(w).abs()[None, :]  # cycles/pixel, <= 0.5
    radius = torch.sqrt(fy**2 + fx**2) / 0.5  # 1 = Nyquist along an axis
    high = power[:, radius > cutoff].sum(dim=1)
    return high / power.flatten(1).sum(dim=1).clamp(min=1e-12)


Upsample = Literal["nearest", "bilinear", "bicubic"]


def resample_codec(images: torch.Tensor, size: int, bits: int, mode: Upsample = "bicubic") -> torch.Tensor:
    """Shrink images (B, C, H, W) in [0, 1] to size x size by area averaging, round each value to one of
    2^bits levels, and enlarge back: what s*s*bits*C bits per image can carry with no learning."""
    h, w = images.shape[-2:]
    small = F.interpolate(images.float(), size=(size, size), mode="area")
    levels = 2**bits - 1
    small = torch.round(small.clamp(0, 1) * levels) / levels
    kw = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(small, size=(h, w), mode=mode, **kw).clamp(0, 1)


def best_resample_codec(images: torch.Tensor, bit_budget: float, *, max_bits: int = 8) -> dict:
    """The resample codec of at most `bit_budget` bits per image with the best mean PSNR on `images`,
    searched over grid sizes, bits per value (1..max_bits) and upsampling modes. Returns its settings,
    bits used, and the reconstructions."""
    c, h = images.shape[1], images.shape[-2]
    best = None
    for bits in range(1, max_bits + 1):
        size = min(h, math.isqrt(int(bit_budget // (bits * c))))  # the largest grid this depth affords
        if size < 1:
            continue
        for mode in ("nearest", "bilinear", "bicubic"):
            out = resample_codec(images, size, bits, mode)
            score = psnr(out, images).mean().item()
            if best is None or score > best["psnr"]:
                best = {"size": size, "bits_per_value": bits, "mode": mode, "bits": size * size * bits * c,
                        "psnr": score, "reconstruction": out}
    if best is None:
        raise ImageInputError(f"bit_budget={bit_budget} affords not even a 1x1 grid of 1-bit values for {c} channels")
    return best
