"""Local attention kinds: sliding window with global tokens (Longformer) and block-sparse (BigBird).

Both cut the sequence into query groups, give each group the keys its pattern allows, and
hand the (group, keys) tiles to the shared `attend_at` (sparse_core.py): memory and time
grow as T * (keys per query) instead of T^2. Global tokens are the first positions of the
sequence; their rows attend to everything (dense), and every row attends to them.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch

from formers.errors import AttentionFitError
from formers.nn.sparse_core import aligned_groups, attend_at, dense_rows, sdpa_attend, ungroup

if TYPE_CHECKING:
    from formers.nn.long_attention import LongAttentionConfig


def _with_global_rows(q, k, v, local: torch.Tensor, n_global_rows: int, **kw) -> torch.Tensor:
    """Replace the first `n_global_rows` query rows of `local` (B, H, T_q, D) by dense attention rows."""
    if n_global_rows == 0:
        return local
    rows = dense_rows(q, k, v, n_global_rows, **kw)
    return torch.cat((rows, local[:, :, n_global_rows:]), dim=2)


class SlidingWindowKernel:
    """Each query sees the keys within `window` positions of it, plus the first `n_global` tokens.

    Beltagy et al. 2020 (Longformer): windowed attention with task-chosen global tokens;
    in a decoder the global tokens are the sequence's first positions, which every later
    query may see (the "attention sink" of Xiao et al. 2023). Queries are processed in
    chunks of `chunk_size`; a chunk of c queries reads c + 2(window-1) keys (c + window - 1
    when causal), so memory is O(T * (chunk + window)). With a KV cache a decoding step reads
    only its last `window` keys and the global ones.
    """

    name = "sliding_window"

    def __init__(self, config: LongAttentionConfig, causal: bool = False) -> None:
        self.window, self.n_global, self.chunk_size = config.window, config.n_global, config.chunk_size
        self.attend = sdpa_attend

    def __call__(self, q, k, v, *, mask=None, bias=None, causal=False, scale=None, dropout_p=0.0) -> torch.Tensor:
        t_q, t_k = q.shape[-2], k.shape[-2]
        w = self.window
        if not causal and w > t_k:
            raise AttentionFitError(
                f"attention.window={w} is wider than the {t_k}-token sequence; lower attention.window to at most "
                f"{t_k} (a window that covers everything is dense attention: use kernel='sdpa')"
            )
        c = min(self.chunk_size, t_q)
        q_idx, _ = aligned_groups(t_q, t_q, c, q.device)  # (G, c): plain chunks; the band is per token
        offset = t_k - t_q
        span = c + (w - 1) * (1 if causal else 2)  # keys a chunk can reach
        start = offset + torch.arange(q_idx.shape[0], device=q.device) * c - (w - 1)  # (G,)
        window_keys = start[:, None] + torch.arange(span, device=q.device)  # (G, span)
        n_g = min(self.n_global, t_k)
        in_window = (window_keys >= n_g) & (window_keys < t_k)  # global keys come once, from their own slots
        window_keys = torch.where(in_window, window_keys, -1)
        global_keys = torch.arange(n_g, device=q.device).expand(q_idx.shape[0], n_g)  # (G, n_g)
        k_idx = torch.cat((global_keys, window_keys), dim=1)  # (G, n_g + span)
        distance = (q_idx + offset)[:, :, None] - k_idx[:, None, :]  # (G, c, L)
        near = distance < w if causal else distance.abs() < w
        near[:, :, :n_g] = True
        kw = dict(mask=mask, bias=bias, causal=causal, scale=scale, dropout_p=dropout_p, attend=self.attend)
        out, _, _ = attend_at(q, k, v, q_idx, k_idx, near, **kw)
        n_global_rows = max(0, min(self.n_global - offset, t_q))
        return _with_global_rows(q, k, v, ungroup(out, 0, t_q), n_global_rows, **kw)


@functools.lru_cache(maxsize=65536)
def _random_blocks(seed: int, block: int, high: int, n: int) -> tuple[int, ...]:
    """`n` block indices in [0, high) for query block `block`, a pure function of its arguments.

    Drawn per block from its own seeded generator, so a block's random keys are the same in a
    full pass, with a KV cache, and when gradient checkpointing recomputes the forward.
    """
    if high <= 0:
        return (-1,) * n
    g = torch.Generator().manual_seed(seed * 1_000_003 + block)
    return tuple(torch.randint(0, high, (n,), generator=g).tolist())


class BlockSparseKernel:
    """Blocks of queries see window blocks, global blocks and random blocks of keys (Zaheer et al. 2020, BigBird).

    The sequence is cut into blocks of `block_size` aligned on absolute positions. Query block
    i sees key blocks i-w..i+w (i-w..i when causal), the first `n_global_blocks` blocks, and
    `n_random_blocks` blocks drawn once per block index (from all blocks; when causal, from
    the blocks before the window). Rows of global blocks attend to every key. Blocks chosen
    twice count once. A partial last block is allowed: its missing keys are simply absent.
    """

    name = "block_sparse"

    def __init__(self, config: LongAttentionConfig, causal: bool = False) -> None:
        self.block = config.block_size
        self.window_blocks, self.n_global = config.window_blocks, config.n_global_blocks
        self.n_random, self.seed = config.n_random_blocks, config.seed
        self.attend = sdpa_attend

    def _key_blocks(self, blocks: torch.Tensor, n_key_blocks: int, causal: bool) -> torch.Tensor:
        """Absolute query block indices (G,) -> the key blocks each sees (G, S), -1 where none."""
        w = self.window_blocks
        window = blocks[:, None] + torch.arange(-w, 1 if causal else w + 1, device=blocks.device)
        chosen = [window, torch.arange(self.n_global, device=blocks.device).expand(len(blocks), self.n_global)]
        if self.n_random:
            table = [_random_blocks(self.seed, b, max(0, b - w) if causal else n_key_blocks, self.n_random)
                     for b in blocks.tolist()]
            chosen.append(torch.tensor(table, dtype=torch.long, device=blocks.device).view(len(blocks), -1))
        sel = torch.cat(chosen, dim=1)  # (G, S)
        earlier = torch.ones(sel.shape[1], sel.shape[1], dtype=torch.bool, device=sel.device).tril(-1)
        repeated = ((sel[:, :, None] == sel[:, None, :]) & earlier).any(-1)  # (G, S): chosen in an earlier slot
        return torch.where(repeated | (sel < 0) | (sel >= n_key_blocks), -1, sel)

    def __call__(self, q, k, v, *, mask=None, bias=None, causal=False, scale=None, dropout_p=0.0) -> torch.Tensor:
        t_q, t_k = q.shape[-2], k.shape[-2]
        b = self.block
        if not causal and b > t_k:
            raise AttentionFitError(
                f"attention.block_size={b} is longer than the {t_k}-token sequence; lower attention.block_size "
                f"to at most {t_k} (BigBird uses 64)"
            )
        q_idx, lead = aligned_groups(t_q, t_k, b, q.device)  # (G, b) query blocks on absolute positions
        blocks = (t_k - t_q) // b + torch.arange(q_idx.shape[0], device=q.device)  # (G,) absolute block index
        sel = self._key_blocks(blocks, -(-t_k // b), causal)  # (G, S)
        k_idx = sel[:, :, None] * b + torch.arange(b, device=q.device)  # (G, S, b)
        k_idx = torch.where((sel[:, :, None] >= 0) & (k_idx < t_k), k_idx, -1).flatten(1)  # (G, S*b)
        allowed = torch.ones(1, 1, 1, dtype=torch.bool, device=q.device)
        kw = dict(mask=mask, bias=bias, causal=causal, scale=scale, dropout_p=dropout_p, attend=self.attend)
        out, _, _ = attend_at(q, k, v, q_idx, k_idx, allowed, **kw)
        n_global_rows = max(0, min(self.n_global * b - (t_k - t_q), t_q))
        return _with_global_rows(q, k, v, ungroup(out, lead, t_q), n_global_rows, **kw)
