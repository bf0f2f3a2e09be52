"""Shared measuring helpers: matmul peak, timing, FLOP counts, peak memory, worker processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 3) -> float:
    """Dense matmul throughput in FLOP/s (2 n^3 per product), the best of `repeats`: a peak, which
    other jobs on a shared machine can only lower."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / min(times)


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


# ---- memory: the kernel's own accounting of resident memory, so every library is measured the same way -------
def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    return _status("VmRSS")


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS counter (VmHWM) from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mb() -> float:
    """Highest resident memory since the last `reset_peak_rss`, in MB."""
    return _status("VmHWM")


# ---- workers: each measurement in a fresh process, so memory figures and allocator caches do not mix ---------
def run_worker(module: str, spec: dict, threads: int) -> dict:
    """Run `python -m module --worker SPEC`; the worker prints one `RESULT {json}` line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [sys.executable, "-m", module, "--worker", json.dumps(spec), "--threads", str(threads)],
        capture_output=True, text=True, env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {spec} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def report(result: dict) -> None:
    """What a worker prints for `run_worker`."""
    print("RESULT " + json.dumps(result), flush=True)
