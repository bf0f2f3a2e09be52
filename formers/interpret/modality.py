"""Modality importance: how much of what a token reads comes from text and how much from the image.

Two measures, because the fusion models mix modalities in two ways:

- one stream (VisualBERT, DALL-E): text and image tokens sit in one sequence, so a query's attention
  row itself splits between them: `modality_share` is the weight mass on image keys;
- two streams (co-attention, the captioner): a self-attention reads the token's own modality and a
  separate cross-attention reads the other, each row summing to 1 on its own, so weights cannot be
  compared across them. What each sublayer *writes* can: `update_share` compares the norms of the two
  updates (Kobayashi et al. 2020, "Attention is Not Only a Weight": weight times the transformed
  value, || sum_j a_ij v_j W_O ||, reflects a head's effect where the weight alone does not).
"""

from __future__ import annotations

import math

import torch

from formers.errors import ConfigError


def modality_share(weights: torch.Tensor, key_is_image: torch.Tensor) -> torch.Tensor:
    """Share of each query's attention mass on image keys: weights (..., T_q, T_k), key_is_image bool (T_k,)
    -> (..., T_q) in [0, 1]; a row that attends nowhere (padding) gets 0."""
    if key_is_image.dim() != 1 or key_is_image.shape[0] != weights.shape[-1]:
        raise ConfigError(f"key_is_image must be a bool vector of T_k={weights.shape[-1]} entries; "
                          f"got shape {tuple(key_is_image.shape)}")
    image = (weights * key_is_image.to(weights.dtype)).sum(-1)
    return image / weights.sum(-1).clamp_min(torch.finfo(weights.dtype).tiny)


def update_share(same: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """other / (same + other), elementwise, for the update norms of the self- and cross-attention of one
    block (any equal shapes); 0 where both are 0."""
    if same.shape != other.shape:
        raise ConfigError(f"update norms must have one shape; got {tuple(same.shape)} and {tuple(other.shape)}")
    return other / (same + other).clamp_min(torch.finfo(other.dtype).tiny)


def head_update_norms(outputs: torch.Tensor, out_weight: torch.Tensor) -> torch.Tensor:
    """|| o_h W_O^h || per head and query: what each head adds to the residual stream (bias left out).

    outputs (B, H, T_q, D_h) the kernel's per-head outputs; out_weight (D, H * D_h) the output projection.
    Returns (B, H, T_q)."""
    b, h, t, d_h = outputs.shape
    w = out_weight.view(-1, h, d_h).transpose(0, 1).float()  # (H, D, D_h): head h's slice of W_O
    return torch.einsum("bhtk,hdk->bhtd", outputs.float(), w).norm(dim=-1)


def token_grid(n_tokens: int, height: int, width: int) -> tuple[int, int, int]:
    """(n_prefix, rows, cols) of an image tower's tokens: a prefix ([CLS]) then a row-major grid with the
    image's aspect (ViT patches, a CNN's feature map). The shortest prefix that leaves such a grid wins."""
    for prefix in range(n_tokens):
        cells = n_tokens - prefix
        rows = math.isqrt(cells * height // width) if width else 0
        for r in (rows, rows + 1):
            if r > 0 and cells % r == 0 and r * width == (cells // r) * height:
                return prefix, r, cells // r
    raise ConfigError(f"{n_tokens} visual tokens form no grid with the image's {height}x{width} aspect")
