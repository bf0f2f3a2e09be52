"""Attention rollout: how much each output position draws from each input position, through every layer.

Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers". A layer's output at position i is
roughly half its input at i (the residual) and half the attention-weighted mix of the inputs, so each
layer's map becomes A' = (A + I) / 2, renormalised to rows of 1, and the maps multiply from the first
layer to the last: R = A'_L ... A'_1 (row i of R: where output i's information came from).

Heads are fused into one map per layer first (mean, as the paper; max and min as in Gildenblat's
vit-explain, where max gives sharper maps on ViTs); `discard_ratio` drops each row's weakest
weights before the residual is added, which suppresses the diffuse background those maps show.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from formers.errors import ConfigError

HeadFusion = Literal["mean", "max", "min"]
FUSE = {
    "mean": lambda w: w.mean(dim=1),
    "max": lambda w: w.amax(dim=1),
    "min": lambda w: w.amin(dim=1),
}


def fuse_heads(weights: torch.Tensor, head_fusion: HeadFusion = "mean") -> torch.Tensor:
    """(B, H, T_q, T_k) -> (B, T_q, T_k), one map per layer."""
    if head_fusion not in FUSE:
        raise ConfigError(f"head_fusion={head_fusion!r} is not allowed; expected one of {sorted(FUSE)}")
    if weights.dim() != 4:
        raise ConfigError(f"attention weights must be (B, H, T_q, T_k); got shape {tuple(weights.shape)}")
    return FUSE[head_fusion](weights)


def discard_weakest(maps: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the `floor(ratio * T_k)` smallest weights of each row (B, T_q, T_k); the diagonal is kept.

    vit-explain discards over the whole matrix at once; per row keeps every query's distribution
    comparable, and keeping the diagonal keeps a row from emptying before the residual is added."""
    n = int(ratio * maps.shape[-1])
    if n == 0:
        return maps
    eye = torch.eye(maps.shape[-2], maps.shape[-1], dtype=torch.bool, device=maps.device)
    ranked = maps.masked_fill(eye, float("inf"))  # the diagonal never ranks among the weakest
    weakest = ranked.topk(n, dim=-1, largest=False).indices  # (B, T_q, n)
    return maps.scatter(-1, weakest, 0.0)


def attention_rollout(
    layers: Sequence[torch.Tensor] | torch.Tensor,
    *,
    head_fusion: HeadFusion = "mean",
    discard_ratio: float = 0.0,
    residual: bool = True,
) -> torch.Tensor:
    """Rollout of self-attention maps, first layer first: each (B, H, T, T), or stacked (L, B, H, T, T).

    Returns (B, T, T); each row sums to 1 (a row that attends nowhere stays zero without `residual`)."""
    if not 0.0 <= discard_ratio < 1.0:
        raise ConfigError(f"discard_ratio={discard_ratio} is not allowed; expected a value in [0, 1)")
    if len(layers) == 0:
        raise ConfigError("attention_rollout needs the maps of at least one layer")
    shape = tuple(layers[0].shape)
    if shape[-1] != shape[-2] or any(tuple(w.shape) != shape for w in layers):
        raise ConfigError(f"rollout multiplies square self-attention maps of one shape; got "
                          f"{[tuple(w.shape) for w in layers]} (leave cross-attention out)")
    rollout = None
    for weights in layers:
        a = discard_weakest(fuse_heads(weights.float(), head_fusion), discard_ratio)  # (B, T, T)
        if residual:
            a = 0.5 * (a + torch.eye(a.shape[-1], device=a.device))
        a = a / a.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(a.dtype).tiny)
        rollout = a if rollout is None else a @ rollout  # later layers read what earlier ones mixed
    return rollout
