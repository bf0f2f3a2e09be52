"""Shared measuring helpers: matmul peak, timing, FLOP counts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 3) -> float:
    """Dense matmul throughput in FLOP/s (2 n^3 per product), median of `repeats`."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def median_time(fn: Callable[[], None], *, warmup: int = 2, repeats: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gpt_train_flops_per_token(n_params: int, n_layers: int, d_model: int, seq_len: int) -> float:
    """6N for the weights (forward + backward) plus 12 L T D for attention scores (Kaplan et al. 2020, PaLM app. B)."""
    return 6 * n_params + 12 * n_layers * d_model * seq_len
