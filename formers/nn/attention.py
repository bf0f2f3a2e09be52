"""Multi-head self- and cross-attention: projections and head bookkeeping around a kernel.

The kernel (kernels.py) does the math; masks (masks.py) say who sees whom; position
schemes (embeddings.py, position_bias.py) arrive as a `Rope` or an additive bias. So this
file only projects, splits heads, caches and merges.
"""

from __future__ import annotations

import torch
from torch import nn

from formers.nn.cache import LayerCache, StaticKV
from formers.nn.embeddings import Rope


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, n_heads, -1).transpose(1, 2)  # (B, H, T, D_h)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*D_h)


class SelfAttention(nn.Module):
    """Queries, keys and values from the same sequence, through one fused projection."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        kernel,
        d_head: int | None = None,
        causal: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_head or d_model // n_heads
        self.causal, self.scale, self.dropout, self.kernel = causal, scale, dropout, kernel
        self.qkv = nn.Linear(d_model, 3 * n_heads * self.d_head, bias=bias)  # [q | k | v], each H*D_h
        self.out = nn.Linear(n_heads * self.d_head, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        rope: Rope | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)  # 3 x (B,H,T,D_h)
        if rope is not None:
            q, k = rope.rotate(q), rope.rotate(k)
        if cache is not None:
            k, v = cache.update(k, v)
        out = self.kernel(
            q, k, v, mask=mask, bias=bias, causal=self.causal, scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(merge_heads(out))


class CrossAttention(nn.Module):
    """Queries from the sequence, keys and values from `memory` (an encoder's output)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        kernel,
        d_memory: int | None = None,
        d_head: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_head or d_model // n_heads
        self.scale, self.dropout, self.kernel = scale, dropout, kernel
        self.q = nn.Linear(d_model, n_heads * self.d_head, bias=bias)
        self.kv = nn.Linear(d_memory or d_model, 2 * n_heads * self.d_head, bias=bias)  # [k | v]
        self.out = nn.Linear(n_heads * self.d_head, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        memory: torch.Tensor,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        cache: StaticKV | None = None,
    ) -> torch.Tensor:
        q = split_heads(self.q(x), self.n_heads)
        if cache is not None and cache.kv is not None:
            k, v = cache.kv  # the memory does not change while decoding: project it once
        else:
            b, s, _ = memory.shape
            k, v = self.kv(memory).view(b, s, 2, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
            if cache is not None:
                cache.kv = (k, v)
        out = self.kernel(
            q, k, v, mask=mask, bias=bias, causal=False, scale=self.scale,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(merge_heads(out))
