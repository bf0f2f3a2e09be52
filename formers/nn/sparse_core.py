"""The one gather-and-attend step every sparse attention kind shares.

A sparse kind (sliding window, block-sparse, LSH) decides, for groups of queries, which
keys each group may look at. It describes that as index tensors:

    q_idx    (..., G, c)     rows of q in each group (-1 = empty slot)
    k_idx    (..., G, L)     positions of the keys the group sees (-1 = empty slot)
    allowed  (..., G, c, L)  the kind's own pattern inside the group (band, same bucket, ...)

and `attend_at` gathers q, k, v, the caller's mask and bias at those indices, adds the
causal rule, and runs a dense kernel on the (G, c, L) tiles. Memory is O(G * c * L), so
O(T * L) instead of O(T^2) when c * G ~ T. Leading index dims are 1 or (B, H): patterns
that depend on the data (LSH) give one index set per batch row and head.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from formers.nn.kernels import explicit_attention, sdpa_attention

Attend = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def explicit_attend(q, k, v, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """The explicit softmax path: (output, weights)."""
    return explicit_attention(q, k, v, **kw)


def sdpa_attend(q, k, v, *, mask=None, bias=None, **kw) -> tuple[torch.Tensor, None]:
    """The fused path: (output, None). Tiles (B, H, G, n, D) go in as (B*H, G, n, D): torch's CPU
    flash kernel takes only 4-D inputs and falls back to the materialising math path otherwise."""
    if q.dim() == 4:
        return sdpa_attention(q, k, v, mask=mask, bias=bias, **kw), None
    b, h, g, c, d = q.shape
    out = sdpa_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), mask=_tiles_4d(mask, b, h),
                         bias=_tiles_4d(bias, b, h), **kw)
    return out.view(b, h, g, c, d), None


def _tiles_4d(t: torch.Tensor | None, b: int, h: int) -> torch.Tensor | None:
    """A mask or bias over tiles (.., G, c, L) -> (1 or B*H, G, c, L); copies only when it varies by batch or head."""
    if t is None:
        return None
    while t.dim() < 5:
        t = t[None]
    if t.shape[0] == 1 and t.shape[1] == 1:
        return t[0]
    return t.expand(b, h, *t.shape[2:]).reshape(b * h, *t.shape[2:])


def as_4d(t: torch.Tensor) -> torch.Tensor:
    """A mask or bias broadcastable to (B, H, T_q, T_k) -> exactly 4 dims."""
    while t.dim() < 4:
        t = t[None]
    return t


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D), idx (G, n) or (B|1, H|1, G, n) in [0, T) -> (B, H, G, n, D)."""
    if idx.dim() == 2:
        return x[:, :, idx]  # (B, H, G, n, D)
    b, h, _, d = x.shape
    g, n = idx.shape[-2:]
    flat = idx.expand(b, h, g, n).reshape(b, h, g * n, 1).expand(b, h, g * n, d)
    return x.gather(2, flat).view(b, h, g, n, d)


def gather_pairs(t: torch.Tensor, q_idx: torch.Tensor, k_idx: torch.Tensor) -> torch.Tensor:
    """t (B|1, H|1, T_q|1, T_k) at rows q_idx (.., G, c) and columns k_idx (.., G, L) -> (B|1, H|1, G, c|1, L)."""
    t = as_4d(t)
    b, h, t_q, _ = t.shape
    if q_idx.dim() == 2:
        q_idx, k_idx = q_idx[None, None], k_idx[None, None]  # (1, 1, G, c), (1, 1, G, L)
    rows = q_idx[..., :, None] if t_q > 1 else torch.zeros_like(q_idx[..., :1, None])  # (.., G, c|1, 1)
    cols = k_idx[..., None, :]  # (.., G, 1, L)
    bi = torch.arange(b, device=t.device).view(b, 1, 1, 1, 1)
    hi = torch.arange(h, device=t.device).view(1, h, 1, 1, 1)
    return t[bi, hi, rows, cols]


def attend_at(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_idx: torch.Tensor,
    k_idx: torch.Tensor,
    allowed: torch.Tensor,
    *,
    mask: torch.Tensor | None,
    bias: torch.Tensor | None,
    causal: bool,
    scale: float | None,
    dropout_p: float,
    attend: Attend,
    extra_bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Attention of the queries in q_idx over the keys in k_idx; returns (out (B,H,G,c,D), weights, mask).

    Queries are the last T_q of T_k positions (as with a KV cache), so query row i has
    position i + T_k - T_q; `causal` compares that position with each key's.
    """
    offset = k.shape[-2] - q.shape[-2]
    qi, ki = q_idx.clamp(min=0), k_idx.clamp(min=0)
    ok = allowed & (q_idx >= 0)[..., :, None] & (k_idx >= 0)[..., None, :]  # (.., G, c, L)
    if causal:
        ok = ok & (k_idx[..., None, :] <= q_idx[..., :, None] + offset)
    if mask is not None:
        ok = ok & gather_pairs(mask, qi, ki)
    total_bias = extra_bias
    if bias is not None:
        gathered = gather_pairs(bias, qi, ki)
        total_bias = gathered if total_bias is None else total_bias + gathered
    out, weights = attend(
        gather_rows(q, qi), gather_rows(k, ki), gather_rows(v, ki),
        mask=ok, bias=total_bias, scale=scale, dropout_p=dropout_p,
    )
    return out, weights, ok


def rows_of(t: torch.Tensor | None, start: int, end: int) -> torch.Tensor | None:
    """Query rows start:end of a mask or bias (unchanged when it does not vary by query)."""
    if t is None:
        return None
    t = as_4d(t)
    return t if t.shape[-2] == 1 else t[..., start:end, :]


def dense_rows(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    n_rows: int,
    *,
    mask: torch.Tensor | None,
    bias: torch.Tensor | None,
    causal: bool,
    scale: float | None,
    dropout_p: float,
    attend: Attend,
) -> torch.Tensor:
    """The first `n_rows` queries attending to every key (global tokens): (B, H, n_rows, D)."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    row_mask = rows_of(mask, 0, n_rows)
    if causal:
        q_pos = torch.arange(t_k - t_q, t_k - t_q + n_rows, device=q.device)[:, None]
        before = torch.arange(t_k, device=q.device)[None, :] <= q_pos  # (n_rows, T_k)
        row_mask = before if row_mask is None else row_mask & before
    out, _ = attend(q[:, :, :n_rows], k, v, mask=row_mask, bias=rows_of(bias, 0, n_rows), scale=scale,
                    dropout_p=dropout_p)
    return out


def aligned_groups(t_q: int, t_k: int, size: int, device) -> tuple[torch.Tensor, int]:
    """Query groups of `size` aligned on absolute positions: (q_idx (G, size), lead).

    Aligning on absolute positions (not on the first query) makes a token's group the same
    whether it is computed in one pass or one token at a time with a KV cache. `lead` is
    the number of empty slots before the first query.
    """
    offset = t_k - t_q
    first = offset // size
    lead = offset - first * size
    n_groups = -(-(lead + t_q) // size)
    slots = torch.arange(n_groups * size, device=device) - lead  # query row of each slot
    q_idx = torch.where((slots >= 0) & (slots < t_q), slots, -1).view(n_groups, size)
    return q_idx, lead


def ungroup(out: torch.Tensor, lead: int, t_q: int) -> torch.Tensor:
    """(B, H, G, c, D) tiles from `aligned_groups` -> (B, H, T_q, D)."""
    return out.flatten(2, 3)[:, :, lead: lead + t_q]
