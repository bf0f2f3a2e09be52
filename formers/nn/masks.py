"""Attention masks as plain functions. Convention: a bool tensor, True = may attend.

Masks broadcast against attention scores of shape (B, H, T_q, T_k).
"""

from __future__ import annotations

import torch


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> torch.Tensor:
    """(T_q, T_k): query i (the last T_q of T_k positions) sees keys 0 .. its own position."""
    offset = t_k - t_q  # queries are the newest positions when a KV cache holds the past
    q = torch.arange(t_q, device=device)[:, None] + offset
    k = torch.arange(t_k, device=device)[None, :]
    return k <= q


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T_k) with 1 for real tokens -> (B, 1, 1, T_k): no query attends to padding."""
    return attention_mask.bool()[:, None, None, :]


def prefix_lm_mask(prefix_lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B, 1, T, T): the prefix is seen bidirectionally, the rest causally (Raffel et al. 2020)."""
    device = prefix_lengths.device
    causal = causal_mask(t, t, device)[None, None]
    in_prefix = torch.arange(t, device=device)[None, :] < prefix_lengths[:, None]  # (B, T) over keys
    return causal | in_prefix[:, None, None, :]


def sliding_window_mask(t_q: int, t_k: int, window: int, causal: bool, device=None) -> torch.Tensor:
    """(T_q, T_k): each query sees keys within `window` positions (behind it, if causal)."""
    offset = t_k - t_q
    q = torch.arange(t_q, device=device)[:, None] + offset
    k = torch.arange(t_k, device=device)[None, :]
    near = (q - k).abs() < window if not causal else (q - k >= 0) & (q - k < window)
    return near


def combine(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of the given masks (None means no constraint)."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out
