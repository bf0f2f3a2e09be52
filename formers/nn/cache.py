"""A preallocated key/value cache, so generation appends in place instead of re-concatenating."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer: one (B, H, T_max, D_h) tensor per layer, filled up to `length`.

    The model writes each layer's new keys/values through `layer(i).update`, then calls
    `advance(t)` once per forward so all layers agree on where the next token goes.
    One tensor per layer rather than one (L, ...) tensor: under torch.compile, writes into slices
    of a shared tensor are functionalised into a copy of the whole cache at every layer.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, max_len: int, d_head: int, *, dtype, device):
        shape = (batch, n_heads, max_len, d_head)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.max_len = max_len
        self.length = 0

    def layer(self, index: int) -> LayerCache:
        return LayerCache(self, index)

    def advance(self, t: int) -> None:
        self.length += t

    def reorder(self, batch_indices: torch.Tensor) -> None:
        """Keep/duplicate batch rows (beam search)."""
        self.k = [k.index_select(0, batch_indices) for k in self.k]
        self.v = [v.index_select(0, batch_indices) for v in self.v]


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
        keys, values = c.k[self.index], c.v[self.index]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        return keys[:, :, :end], values[:, :, :end]


class StaticKV:
    """Keys/values computed once and reused every step (cross-attention over an encoder's output)."""

    def __init__(self) -> None:
        self.kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def reorder(self, batch_indices: torch.Tensor) -> None:
        if self.kv is not None:
            self.kv = tuple(t.index_select(0, batch_indices) for t in self.kv)
