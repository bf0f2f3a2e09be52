"""A preallocated key/value cache, so generation appends in place instead of re-concatenating."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer: (L, B, H, T_max, D_h), filled up to `length`.

    The model writes each layer's new keys/values through `layer(i).update`, then calls
    `advance(t)` once per forward so all layers agree on where the next token goes.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, max_len: int, d_head: int, *, dtype, device):
        shape = (n_layers, batch, n_heads, max_len, d_head)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self, index)

    def advance(self, t: int) -> None:
        self.length += t

    def reorder(self, batch_indices: torch.Tensor) -> None:
        """Keep/duplicate batch rows (beam search)."""
        self.k = self.k.index_select(1, batch_indices)
        self.v = self.v.index_select(1, batch_indices)


class LayerCache:
    """One layer's view of a KVCache."""

    def __init__(self, cache: KVCache, index: int) -> None:
        self.cache, self.index = cache, index

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, H, T, D_h) after the cached ones; return all keys/values so far."""
        c, start = self.cache, self.cache.length
        end = start + k.shape[-2]
        if end > c.max_len:
            raise ValueError(f"KV cache holds {c.max_len} positions; cannot write up to {end}")
        c.k[self.index, :, :, start:end] = k
        c.v[self.index, :, :, start:end] = v
        return c.k[self.index, :, :, :end], c.v[self.index, :, :, :end]


class StaticKV:
    """Keys/values computed once and reused every step (cross-attention over an encoder's output)."""

    def __init__(self) -> None:
        self.kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def reorder(self, batch_indices: torch.Tensor) -> None:
        if self.kv is not None:
            self.kv = tuple(t.index_select(0, batch_indices) for t in self.kv)
