"""Linformer: low-rank attention through learned projections of keys and values (Wang et al. 2020).

Keys and values (B, H, T, D_h) are projected along the sequence to k rows, E k and F v with
E, F of shape (k, n); queries then attend to k summaries instead of T tokens, so time and
memory are O(T * k). The projections are trained weights, so this kernel is an nn.Module
owned by its attention layer. E and F are shared by the heads of a layer (the paper's
"headwise sharing"). An input shorter than n uses the first T columns.

What it cannot do, and says so: causal attention (every summary row mixes all positions,
the future included), per-query masks (only key padding survives the projection: padded
keys and values are zeroed before it), and position biases (ALiBi, T5: summaries have no
position). Rotary, learned and sinusoidal positions work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from formers.errors import AttentionFitError, ConfigError
from formers.nn.kernels import sdpa_attention
from formers.nn.sparse_core import as_4d

if TYPE_CHECKING:
    from formers.nn.long_attention import LongAttentionConfig


class LinformerKernel(nn.Module):
    name = "linformer"

    def __init__(self, config: LongAttentionConfig, causal: bool = False) -> None:
        super().__init__()
        if causal:
            raise ConfigError(
                "kernel='linformer' cannot be causal: each projected key mixes every position, the future "
                "included; use kernel='sliding_window', 'block_sparse', 'lsh' or 'chunked' in decoders"
            )
        self.max_len = config.linformer_max_len
        k, n = config.linformer_k, config.linformer_max_len
        self.proj_k = nn.Parameter(torch.empty(k, n))  # E (k, n)
        self.proj_v = nn.Parameter(torch.empty(k, n))  # F (k, n)
        for p in (self.proj_k, self.proj_v):
            nn.init.xavier_uniform_(p, gain=2**-0.5)  # as the authors' fairseq code

    def forward(self, q, k, v, *, mask=None, bias=None, causal=False, scale=None, dropout_p=0.0) -> torch.Tensor:
        t_k = k.shape[-2]
        if causal:
            raise ConfigError("kernel='linformer' cannot be causal; choose another attention kind for decoders")
        if t_k > self.max_len:
            raise AttentionFitError(
                f"the Linformer projection covers attention.linformer_max_len={self.max_len} positions but the input "
                f"has {t_k}; raise attention.linformer_max_len to at least {t_k} (new weights) or shorten the input"
            )
        if bias is not None:
            raise ConfigError("kernel='linformer' cannot apply a position bias (ALiBi, T5): projected keys have no "
                              "position; use position='rotary', 'learned' or 'sinusoidal'")
        if mask is not None:
            mask = as_4d(mask)
            if mask.shape[-2] != 1:
                raise ConfigError("kernel='linformer' takes only key padding masks (B, 1, 1, T): a per-query mask "
                                  "(causal, prefix LM) cannot survive the projection; use another attention kind")
            keep = mask.transpose(-1, -2).to(k.dtype)  # (B, 1, T_k, 1): zero padded keys and values
            k, v = k * keep, v * keep
        k = torch.matmul(self.proj_k[:, :t_k].to(k.dtype), k)  # (B, H, k, D_h)
        v = torch.matmul(self.proj_v[:, :t_k].to(v.dtype), v)  # (B, H, k, D_h)
        return sdpa_attention(q, k, v, scale=scale, dropout_p=dropout_p)
