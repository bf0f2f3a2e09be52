"""Attention kernels by name: the one static table, imported when asked for.

A model config picks its kernel with one field (`kernel=`, sizes in `attention=`); this table
says which class each name is. Every kernel class is built as cls(config, causal) and called
with the dense kernels' signature (kernels.py). Nothing registers itself on import, and
kernels.py, the dense math every long kind builds on, imports none of them. Adding a kernel
is one line in KERNELS.
"""

from __future__ import annotations

import importlib

from formers.nn.long_attention import LongAttentionConfig

KERNELS: dict[str, str] = {
    "sdpa": "formers.nn.kernels:SDPAKernel",
    "explicit": "formers.nn.kernels:ExplicitKernel",
    "chunked": "formers.nn.chunked_attention:ChunkedKernel",
    "sliding_window": "formers.nn.local_attention:SlidingWindowKernel",
    "block_sparse": "formers.nn.local_attention:BlockSparseKernel",
    "linformer": "formers.nn.linformer:LinformerKernel",
    "lsh": "formers.nn.lsh_attention:LSHKernel",
}

# Kinds defined by one sequence's own positions: cross-attention uses dense SDPA instead.
SELF_ONLY = frozenset({"sliding_window", "block_sparse", "linformer", "lsh"})


def make_kernel(name: str, config: LongAttentionConfig | None = None, *, causal: bool = False, cross: bool = False):
    """Build the kernel a config names; long kinds read their sizes from `config`.

    Cross-attention (`cross=True`) keeps dense SDPA for the kinds defined over one
    sequence's positions (SELF_ONLY).
    """
    if cross and name in SELF_ONLY:
        name = "sdpa"
    module, cls = KERNELS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config or LongAttentionConfig(), causal)
