"""Attention kernels: the softmax(QK^T * scale + bias) V computation, behind one interface.

A kernel takes q (B, H, T_q, D_h), k and v (B, H, T_k, D_h), an optional bool `mask`
(True = may attend, broadcastable to (B, H, T_q, T_k)), an optional additive float
`bias` of the same broadcast shape (ALiBi, T5 relative positions), and returns
(B, H, T_q, D_h). `causal=True` adds the causal constraint (queries are the last T_q
of the T_k positions, as with a KV cache). A query row with nothing to attend to
returns zeros and finite gradients on every path.

The SDPA kernel is the fast path (fused flash / memory-efficient kernels); the explicit
kernel materialises the weights, which is what interpretability and teaching need. The
long-context kinds build on these two; kernel_table.py lists them all by name.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from formers.nn.masks import causal_mask, combine


def _full_mask(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, causal: bool) -> torch.Tensor | None:
    """Fold the causal constraint into `mask` (needed whenever SDPA's is_causal cannot express it)."""
    if not causal:
        return mask
    return combine(mask, causal_mask(q.shape[-2], k.shape[-2], q.device))


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialised attention: returns (output (B,H,T_q,D_h), weights (B,H,T_q,T_k))."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)).float() * scale  # (B, H, T_q, T_k), softmax in fp32
    if bias is not None:
        scores = scores + bias.float()
    mask = _full_mask(q, k, mask, causal)
    if mask is not None:
        # finfo.min rather than -inf: a fully masked row then softmaxes to a finite uniform
        # distribution instead of NaN, and is zeroed below, so gradients stay finite.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask.any(dim=-1, keepdim=True)
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.matmul(weights, v), weights


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """Fused attention through torch's scaled_dot_product_attention."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    if bias is None and mask is None and causal and t_q == t_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, dropout_p=dropout_p)
    mask = _full_mask(q, k, mask, causal and t_q > 1)
    attn_mask = mask
    if bias is not None:
        attn_mask = bias.to(q.dtype)
        if mask is not None:
            attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale, dropout_p=dropout_p)
    if mask is not None:
        # Some backends (e.g. CUDA memory-efficient) give NaN on rows that see nothing: zero them.
        out = out.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return out


class SDPAKernel:
    """Fast path (default). Built as every kernel is, from (config, causal); it needs neither."""

    name = "sdpa"

    def __init__(self, config=None, causal: bool = False) -> None:
        pass

    def __call__(self, q, k, v, **kw) -> torch.Tensor:
        return sdpa_attention(q, k, v, **kw)


class ExplicitKernel:
    """Explicit softmax; keeps the last weights in `.weights` when `record` is set."""

    name = "explicit"

    def __init__(self, config=None, causal: bool = False, *, record: bool = False) -> None:
        self.record = record
        self.weights: torch.Tensor | None = None

    def __call__(self, q, k, v, **kw) -> torch.Tensor:
        out, weights = explicit_attention(q, k, v, **kw)
        if self.record:
            self.weights = weights.detach()
        return out
