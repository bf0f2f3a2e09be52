"""Position schemes that add a bias to attention scores: ALiBi and T5 relative buckets."""

from __future__ import annotations

import math

import torch
from torch import nn

from formers.nn.embeddings import PositionScheme


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Geometric slopes per head (Press et al. 2022); non-powers of two interleave as in the paper."""

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two_slopes(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two_slopes(closest) + extra)


class ALiBiPositions(PositionScheme):
    """Penalise attention linearly with distance: score -= slope_h * |i - j|. No trained weights."""

    def __init__(self, n_heads: int) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(n_heads), persistent=False)

    def bias(self, t_q: int, t_k: int, device: torch.device) -> torch.Tensor:
        q = torch.arange(t_k - t_q, t_k, device=device)[:, None]
        k = torch.arange(t_k, device=device)[None, :]
        distance = (q - k).abs().float()  # (T_q, T_k); future keys are removed by the causal mask
        return -self.slopes.to(device)[None, :, None, None] * distance  # (1, H, T_q, T_k)


def relative_position_bucket(relative: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int):
    """T5's buckets: exact for small offsets, logarithmic up to max_distance (Raffel et al. 2020)."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative > 0).long() * num_buckets
        relative = relative.abs()
    else:
        relative = -torch.clamp(relative, max=0)
    max_exact = num_buckets // 2
    is_small = relative < max_exact
    log_ratio = torch.log(relative.float() / max_exact + 1e-20) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, relative, large)


class T5RelativePositions(PositionScheme):
    """A trained scalar per (bucketed offset, head), shared by every layer of a stack."""

    def __init__(self, n_heads: int, *, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.bidirectional = bidirectional
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.table = nn.Embedding(num_buckets, n_heads)

    def bias(self, t_q: int, t_k: int, device: torch.device) -> torch.Tensor:
        q = torch.arange(t_k - t_q, t_k, device=device)[:, None]
        k = torch.arange(t_k, device=device)[None, :]
        buckets = relative_position_bucket(k - q, self.bidirectional, self.num_buckets, self.max_distance)
        return self.table(buckets).permute(2, 0, 1)[None]  # (1, H, T_q, T_k)
