"""Shared measuring helpers: the machine, matmul peak, timing, FLOP counts, peak memory, worker processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

# Set before Python starts, these make a bigger x86 CPU dispatch like an AVX2-only one: torch's own kernels,
# oneDNN (no bf16 kernels left: bf16 is emulated) and MKL's fp32 GEMM. Inductor's cache key misses the first,
# so an emulated run gets its own compile cache.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "TORCHINDUCTOR_CACHE_DIR": "/tmp/torchinductor-avx2"}


def machine(peak_n: int = 1024) -> dict:
    """The CPU as this process dispatches on it (model, ATen kernels, bf16 hardware, oneDNN bf16) and its
    fp32 and bf16 matmul peaks (peak_n^3, best of 3), measured now: every figure of a run names its machine."""
    from formers.training.precision import cpu_facts, native_bf16

    facts = cpu_facts()
    return {
        "cpu": facts.name, "kernels": facts.capability, "bf16_instructions": facts.bf16_units or "none",
        "onednn_bf16": facts.onednn_bf16, "native_bf16": native_bf16(facts), "threads": torch.get_num_threads(),
        "isa_env": {k: os.environ[k] for k in AVX2_ENV if k in os.environ and k != "TORCHINDUCTOR_CACHE_DIR"},
        "load_average": os.getloadavg()[0],
        f"matmul_{peak_n}_gflops": {name: matmul_peak(dtype, peak_n) / 1e9
                                    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))},
    }


def machine_line(m: dict) -> str:
    """One line naming the machine, for the top of a report."""
    peaks = next(v for k, v in m.items() if k.startswith("matmul_"))
    n = next(k for k in m if k.startswith("matmul_")).split("_")[1]
    emulated = f" under {' '.join(f'{k}={v}' for k, v in m['isa_env'].items())}" if m["isa_env"] else ""
    def rate(gflops: float) -> str:
        return f"{gflops:,.0f}" if gflops >= 10 else f"{gflops:.1f}"

    return (f"machine: {m['cpu']}{emulated}: kernels {m['kernels']}, bf16 instructions {m['bf16_instructions']}, "
            f"oneDNN bf16 {'on' if m['onednn_bf16'] else 'off'} (bf16 {'native' if m['native_bf16'] else 'emulated'}); "
            f"{m['threads']} threads; matmul {n}^3 fp32 {rate(peaks['fp32'])} GFLOP/s, "
            f"bf16 {rate(peaks['bf16'])} GFLOP/s; load average {m['load_average']:.1f}")


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
def run_worker(module: str, spec: dict, threads: int, env: dict[str, str] | None = None) -> dict:
    """Run `python -m module --worker SPEC` (with `env` added to this environment, e.g. AVX2_ENV); the worker
    prints one `RESULT {json}` line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), **(env or {})}
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
