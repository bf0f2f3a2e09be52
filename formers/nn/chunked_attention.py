"""Memory-efficient dense attention: the explicit softmax path, one chunk of queries at a time.

Rabe & Staats 2021 ("Self-attention does not need O(n^2) memory"): exact attention computed
over query chunks needs only a (chunk, T_k) score tile at a time, and recomputing each tile
in the backward pass (instead of saving it) keeps training memory O(T * chunk) as well. The
result equals `explicit_attention` on the whole sequence; time stays O(T^2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.checkpoint import checkpoint

from formers.nn.kernels import explicit_attention
from formers.nn.sparse_core import rows_of

if TYPE_CHECKING:
    from formers.nn.long_attention import LongAttentionConfig


def _chunk(q, k, v, mask, bias, causal: bool, scale, dropout_p: float) -> torch.Tensor:
    return explicit_attention(q, k, v, mask=mask, bias=bias, causal=causal, scale=scale, dropout_p=dropout_p)[0]


class ChunkedKernel:
    """Exact attention in query chunks of `chunk_size`, each tile recomputed in backward."""

    name = "chunked"

    def __init__(self, config: LongAttentionConfig, causal: bool = False) -> None:
        self.chunk_size = config.chunk_size

    def __call__(self, q, k, v, *, mask=None, bias=None, causal=False, scale=None, dropout_p=0.0) -> torch.Tensor:
        t_q, t_k = q.shape[-2], k.shape[-2]
        recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        outs = []
        for start in range(0, t_q, self.chunk_size):
            end = min(start + self.chunk_size, t_q)
            # Causal chunks stop at their last query's position: the keys after it are all masked anyway.
            n_keys = t_k - t_q + end if causal else t_k
            args = (q[:, :, start:end], k[:, :, :n_keys], v[:, :, :n_keys],
                    _cols(rows_of(mask, start, end), n_keys), _cols(rows_of(bias, start, end), n_keys),
                    causal, scale, dropout_p)
            # checkpoint keeps the RNG state, so attention dropout is the same when the tile is recomputed.
            outs.append(checkpoint(_chunk, *args, use_reentrant=False) if recompute else _chunk(*args))
        return torch.cat(outs, dim=2)


def _cols(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if t is None else t[..., :n]
