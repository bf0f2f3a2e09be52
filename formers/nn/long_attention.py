"""Attention kinds for long inputs, chosen by name in a model config (`kernel=`), sized by `attention=`.

| kernel         | idea (paper)                                            | cost           | causal | KV cache |
|----------------|---------------------------------------------------------|----------------|--------|----------|
| chunked        | exact; query tiles recomputed in backward (Rabe & Staats 2021) | O(T^2), memory O(T c) | yes | yes |
| sliding_window | band of `window` plus `n_global` tokens (Longformer)    | O(T w)         | yes    | yes      |
| block_sparse   | window + global + random blocks (BigBird)               | O(T b blocks)  | yes    | yes      |
| linformer      | keys and values projected to k rows (Linformer)         | O(T k)         | no     | -        |
| lsh            | hash into buckets, sort, attend nearby (Reformer)       | O(T c)         | yes    | no       |

Every kind is a kernel with the dense kernels' call signature (kernels.py), listed by name in
kernel_table.py, so any model selects one with one config field and nothing else changes.
Cross-attention stays dense: windows, blocks, buckets and projections are defined over one
sequence's positions. This module holds their sizes (LongAttentionConfig); each kind is its own file.
"""

from __future__ import annotations

import dataclasses

from formers.config import Config, check


@dataclasses.dataclass(kw_only=True)
class LongAttentionConfig(Config):
    """Sizes of the long-context attention kinds; each kind reads only its own fields."""

    window: int = 128  # sliding_window: a query sees keys less than `window` positions away
    n_global: int = 0  # sliding_window: the first n tokens see and are seen by every token
    chunk_size: int = 128  # queries per tile (sliding_window, chunked); sorted places per window (lsh)
    block_size: int = 64  # block_sparse: tokens per block (BigBird: 64)
    window_blocks: int = 1  # block_sparse: neighbour blocks on each side (BigBird: 1, i.e. 3 blocks)
    n_global_blocks: int = 1  # block_sparse: leading blocks that see and are seen by every block
    n_random_blocks: int = 2  # block_sparse: random key blocks per query block (BigBird: 3)
    seed: int = 0  # fixes block_sparse's random blocks and lsh's hash rotations
    linformer_k: int = 128  # linformer: rows keys and values are projected to
    linformer_max_len: int = 1024  # linformer: longest input the projections cover (their n)
    lsh_buckets: int = 16  # lsh: hash buckets per round (1, or an even number)
    lsh_rounds: int = 1  # lsh: independent hash rounds, mixed by log-sum-exp
    lsh_shared_qk: bool = True  # lsh: keys are the normalised queries (the Reformer default)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        for field in ("window", "chunk_size", "block_size", "linformer_k", "linformer_max_len", "lsh_rounds"):
            check(getattr(self, field) >= 1, f"{name}.{field}", getattr(self, field), "an int >= 1")
        for field in ("n_global", "window_blocks", "n_global_blocks", "n_random_blocks"):
            check(getattr(self, field) >= 0, f"{name}.{field}", getattr(self, field), "an int >= 0")
        check(self.linformer_k <= self.linformer_max_len, f"{name}.linformer_k", self.linformer_k,
              f"at most linformer_max_len={self.linformer_max_len} (a projection cannot add rows)")
        check(self.lsh_buckets == 1 or (self.lsh_buckets >= 2 and self.lsh_buckets % 2 == 0),
              f"{name}.lsh_buckets", self.lsh_buckets, "1 or an even number (buckets come from +-rotations)")
