"""LSH attention: hash tokens into buckets, sort, attend within the bucket nearby (Kitaev et al. 2020, Reformer).

Angular LSH (Andoni et al. 2015): a fixed random rotation R (D_h, buckets/2) sends x to
bucket argmax([xR, -xR]), so vectors at a small angle tend to share a bucket. Tokens are
sorted by (bucket, position) and each query attends to the keys of its own bucket among
the `chunk_size` sorted places around it (before it, when causal). Because a query's
same-bucket neighbours in that order are the tokens of its bucket closest to it in
position, the causal form never depends on later tokens. Cost is O(T * chunk_size).

Shared QK (the Reformer default): keys are the unit-normalised queries, a token is one
sorted item, and attending to itself is penalised (-1e5) unless nothing else is there.
Without it, queries and keys are hashed separately and sorted together as 2T items.
Several hash rounds are combined by their log-sum-exp, with a key met in several rounds
counted once (the paper's duplicate correction). The full sequence is hashed at once, so
there is no incremental (KV cache) form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from formers.errors import AttentionFitError
from formers.nn.kernels import explicit_attention
from formers.nn.sparse_core import attend_at, gather_pairs, gather_rows, sdpa_attend

if TYPE_CHECKING:
    from formers.nn.long_attention import LongAttentionConfig

SELF_PENALTY = -1e5  # Reformer's score for a token attending to itself under shared QK


def _attend_keep_weights(q, k, v, *, dropout_p: float, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit attention returning the weights before dropout (the round mixing needs their normaliser)."""
    out, weights = explicit_attention(q, k, v, dropout_p=0.0, **kw)
    if dropout_p > 0.0:
        out = torch.matmul(F.dropout(weights, p=dropout_p), v)
    return out, weights


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (B, H, R, N) at idx (B, H, R, *rest) flattened over `rest` -> (B, H, R, *rest)."""
    return x.gather(-1, idx.flatten(3)).view(idx.shape)


class LSHKernel:
    name = "lsh"

    def __init__(self, config: LongAttentionConfig, causal: bool = False) -> None:
        self.n_buckets, self.n_rounds, self.chunk_size = config.lsh_buckets, config.lsh_rounds, config.chunk_size
        self.shared_qk, self.seed = config.lsh_shared_qk, config.seed
        self._rotations: dict = {}
        # One round needs no normaliser: the fused path. Several rounds mix by log-sum-exp: explicit weights.
        self.attend = sdpa_attend if self.n_rounds == 1 else _attend_keep_weights

    def hash(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, T, D) -> buckets (B, H, R, T), one row per hash round."""
        b, h, t, d = x.shape
        if self.n_buckets == 1:
            return torch.zeros(b, h, self.n_rounds, t, dtype=torch.long, device=x.device)
        key = (d, x.device, x.dtype)
        if key not in self._rotations:  # fixed per kernel: recomputation under checkpointing hashes alike
            g = torch.Generator().manual_seed(self.seed)
            self._rotations[key] = torch.randn(d, self.n_rounds, self.n_buckets // 2, generator=g).to(x.device, x.dtype)
        rotated = torch.einsum("bhtd,drk->bhrtk", x.detach(), self._rotations[key])  # (B, H, R, T, buckets/2)
        return torch.cat((rotated, -rotated), dim=-1).argmax(dim=-1)

    def _items(self, q: torch.Tensor, k: torch.Tensor):
        """Sortable items: (position (N,), is_query (N,), is_key (N,), bucket (B,H,R,N), query/key buckets)."""
        t, dev = q.shape[-2], q.device
        pos = torch.arange(t, device=dev)
        if self.shared_qk:
            buckets = self.hash(q)
            every = torch.ones(t, dtype=torch.bool, device=dev)
            return pos, every, every, buckets, buckets, buckets
        bq, bk = self.hash(q), self.hash(k)
        is_key = torch.cat((torch.ones(t, dtype=torch.bool, device=dev), torch.zeros(t, dtype=torch.bool, device=dev)))
        return pos.repeat(2), ~is_key, is_key, torch.cat((bk, bq), dim=-1), bq, bk

    def __call__(self, q, k, v, *, mask=None, bias=None, causal=False, scale=None, dropout_p=0.0) -> torch.Tensor:
        b, h, t, d = q.shape
        if k.shape[-2] != t:
            raise AttentionFitError(
                f"kernel='lsh' hashes the whole sequence at once and has no KV-cache form (got {t} queries over "
                f"{k.shape[-2]} keys); generate with use_cache=False, or use kernel='sliding_window'"
            )
        if self.shared_qk:
            k = F.normalize(q, dim=-1)  # Reformer: shared QK with unit-length keys
        pos, is_q, is_k, buckets, bq, bk = self._items(q, k)
        n = pos.numel()
        order = (buckets * (2 * n) + 2 * pos + (is_q & ~is_k)).argsort(dim=-1)  # (B, H, R, N); keys before queries
        c = min(self.chunk_size, n)
        n_chunks = -(-n // c)
        span = c + (c - 1) * (1 if causal else 2)
        q_slot = torch.arange(n_chunks * c, device=q.device).view(n_chunks, c)  # sorted places of each chunk
        k_slot = (torch.arange(n_chunks, device=q.device) * c - (c - 1))[:, None] + torch.arange(span, device=q.device)
        apart = q_slot[:, :, None] - k_slot[:, None, :]  # (nc, c, L): sorted places from key to query
        near = (apart >= 0) & (apart < c) if causal else apart.abs() < c

        def at(slots: torch.Tensor):  # sorted places -> (token position or -1, bucket, is_q, is_k)
            inside = (slots >= 0) & (slots < n)
            item = order.gather(-1, slots.clamp(0, n - 1).flatten().expand(b, h, self.n_rounds, -1))
            item = item.view(b, h, self.n_rounds, *slots.shape)  # (B, H, R, nc, c|L)
            return (torch.where(inside, pos[item], -1), _take(buckets, item), inside & is_q[item],
                    inside & is_k[item])

        q_pos, q_bucket, q_ok, _ = at(q_slot)
        k_pos, k_bucket, _, k_ok = at(k_slot)
        q_idx, k_idx = torch.where(q_ok, q_pos, -1), torch.where(k_ok, k_pos, -1)
        allowed = near & (q_bucket[..., :, None] == k_bucket[..., None, :])  # (B, H, R, nc, c, L)
        extra = self._extra_bias(q_idx, k_idx, bq, bk, mask_self=self.shared_qk, bias=bias, dtype=q.dtype)
        flat = lambda x: x.flatten(2, 3)  # noqa: E731  (B, H, R, nc, ...) -> (B, H, R*nc, ...)
        out, weights, ok = attend_at(
            q, k, v, flat(q_idx), flat(k_idx), flat(allowed), mask=mask, bias=None, causal=causal, scale=scale,
            dropout_p=dropout_p, attend=self.attend, extra_bias=None if extra is None else flat(extra),
        )
        return self._merge_rounds(q, k, out, weights, ok, flat(q_idx), flat(k_idx), extra, scale, t)

    def _extra_bias(self, q_idx, k_idx, bq, bk, *, mask_self: bool, bias, dtype) -> torch.Tensor | None:
        """Self penalty (shared QK), -log(rounds sharing the pair's bucket), and the caller's bias, gathered."""
        terms = []
        qi, ki = q_idx.clamp(min=0), k_idx.clamp(min=0)
        if mask_self:
            terms.append((q_idx[..., :, None] == k_idx[..., None, :]).to(dtype) * SELF_PENALTY)
        if self.n_rounds > 1:
            shared = sum(
                (_take(bq[:, :, r:r + 1].expand_as(bq), qi)[..., :, None]
                 == _take(bk[:, :, r:r + 1].expand_as(bk), ki)[..., None, :]).to(dtype)
                for r in range(self.n_rounds)
            )
            terms.append(-torch.log(shared.clamp(min=1)))
        if bias is not None:
            b, h, r, g = qi.shape[:4]
            pairs = gather_pairs(bias, qi.flatten(2, 3), ki.flatten(2, 3))  # (B|1, H|1, R*nc, c, L)
            terms.append(pairs.unflatten(2, (r, g)).to(dtype))
        return sum(terms) if terms else None

    def _merge_rounds(self, q, k, out, weights, ok, q_idx, k_idx, extra, scale, t) -> torch.Tensor:
        """Scatter each round's rows back to token order and mix rounds by their log-sum-exp."""
        b, h, g, c, d = out.shape
        r = self.n_rounds
        rows = torch.where(q_idx >= 0, q_idx, t).flatten(2)  # (B, H, G*c); empty slots land on a spare row
        if r == 1:
            spread = rows[..., None].expand(-1, -1, -1, d)
            return out.new_zeros(b, h, t + 1, d).scatter(2, spread, out.flatten(2, 3))[:, :, :t]
        # A row's normaliser from its largest weight: lse = s_j - log w_j (exact, and differentiable).
        j = weights.argmax(dim=-1, keepdim=True)  # (B, H, G, c, 1)
        k_j = gather_rows(k, torch.take_along_dim(k_idx.clamp(min=0)[..., None, :].expand(ok.shape), j, -1)[..., 0])
        q_rows = gather_rows(q, q_idx.clamp(min=0))
        s_j = (q_rows * k_j).sum(-1).float() * (d**-0.5 if scale is None else scale)
        if extra is not None:
            s_j = s_j + torch.take_along_dim(extra.flatten(2, 3).expand(ok.shape), j, -1)[..., 0].float()
        w_j = torch.take_along_dim(weights, j, -1)[..., 0].float()
        lse = torch.where(ok.any(-1), s_j - torch.log(w_j.clamp(min=1e-30)), torch.finfo(torch.float32).min)
        per_round = rows.view(b, h, r, -1)  # (B, H, R, nc*c)
        outs = out.new_zeros(b, h, r, t + 1, d).scatter(
            3, per_round[..., None].expand(-1, -1, -1, -1, d), out.view(b, h, r, -1, d))[:, :, :, :t]
        lses = lse.new_full((b, h, r, t + 1), torch.finfo(torch.float32).min).scatter(
            3, per_round, lse.view(b, h, r, -1))[:, :, :, :t]
        mix = torch.softmax(lses, dim=2).to(out.dtype)  # (B, H, R, T)
        return (outs * mix[..., None]).sum(2)
