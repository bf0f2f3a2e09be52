"""Cost of each attention kind against sequence length: time and peak memory of forward + backward.

Two scopes: one self-attention layer (d=512, 8 heads of 64, batch 1, bidirectional) and a
small model (a 2-layer GPT trunk, d=256, 4 heads, rotary positions, read bidirectionally so
Linformer can join), from 1k to 32k tokens. Kinds: naive softmax (the explicit kernel,
which materialises T x T weights), SDPA (torch's fused kernel), and the long-context kinds
of formers/nn/long_attention.py. Prints a table, the fitted scaling exponent of each kind
(slope of log time and log memory against log T), and writes a log-log figure and a JSON.

Peak memory: every case runs in a fresh subprocess; its peak is the process's resident-set
high-water mark (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) minus its resident set just
before the first measured step, so it counts activations, weights' gradients and temporaries
of one forward + backward, not the interpreter and torch. That step runs with glibc's mmap
threshold lowered, so freed blocks leave the resident set (see `set_mmap_threshold`). Cases whose predicted time or
memory exceeds the caps are skipped and reported as such (a dense 16k x 16k score matrix
alone is 8 GB per head group on this 24 GB machine).

    .venv/bin/python -m benchmarks.long_attention            # ~5 min of CPU (14 min on a busy machine)
    .venv/bin/python -m benchmarks.long_attention --quick    # 1k-4k, seconds per case
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import machine, machine_line
from formers.models import GPT, GPTConfig
from formers.nn.attention import SelfAttention
from formers.nn.kernel_table import make_kernel
from formers.nn.long_attention import LongAttentionConfig

KINDS = ["naive", "sdpa", "chunked", "sliding_window", "block_sparse", "linformer", "lsh"]
KERNEL = {"naive": "explicit"}  # benchmark name -> kernel name, where they differ
QUADRATIC_TIME = {"naive", "sdpa", "chunked"}
QUADRATIC_MEMORY = {"naive"}
FIGURES = Path(__file__).parent / "figures"


def attention_config(seq_len: int) -> LongAttentionConfig:
    """Sizes as in the papers' defaults: each query of the sparse kinds sees a few hundred keys."""
    return LongAttentionConfig(
        window=256, chunk_size=256, block_size=64, window_blocks=1, n_global_blocks=1, n_random_blocks=2,
        linformer_k=256, linformer_max_len=seq_len, lsh_buckets=32, lsh_rounds=1,
    )


def build(scope: str, kind: str, seq_len: int):
    """-> (module, step function running one forward + backward)."""
    name = KERNEL.get(kind, kind)
    if scope == "layer":
        layer = SelfAttention(512, 8, kernel=make_kernel(name, attention_config(seq_len)), causal=False)
        x = torch.randn(1, seq_len, 512, requires_grad=True)

        def step() -> None:
            layer(x).square().mean().backward()

        return layer, step
    model = GPT(GPTConfig(
        vocab_size=256, d_model=256, n_heads=4, n_layers=2, max_seq_len=seq_len, dropout=0.0, position="rotary",
        causal=False, kernel=name, attention=attention_config(seq_len),
    ))
    ids = torch.randint(0, 256, (1, seq_len))

    def step_model() -> None:
        logits = model(ids).logits
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()

    return model, step_model


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def set_mmap_threshold(nbytes: int) -> None:
    """glibc: allocations above `nbytes` are mmapped and returned to the OS on free (no-op elsewhere).

    With glibc's default dynamic threshold, freed blocks of up to 32 MiB stay in the heap, so
    the resident set counts cached garbage as well as live tensors (it inflated the chunked
    kernel's peak 6x). The memory step runs with a low threshold, the timed steps with 32 MiB.
    """
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # -3 = M_MMAP_THRESHOLD


def run_case(scope: str, kind: str, seq_len: int, threads: int) -> dict:
    """In the child process: one measured step for memory, then timed repeats."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    build(scope, kind, 256)[1]()  # warm up thread pools and kernel caches, so they do not count as the case's memory
    _, step = build(scope, kind, seq_len)
    set_mmap_threshold(128 * 1024)
    before = resident_mb()
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before  # ru_maxrss is in KiB on Linux
    set_mmap_threshold(32 * 2**20)
    repeats = 2 if first < 1.0 else 1 if first < 8.0 else 0  # the first step ran with slower allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times) if times else first, "peak_mb": max(peak, 0.0)}


def spawn(scope: str, kind: str, seq_len: int, threads: int, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.long_attention", "--case", scope, kind, str(seq_len),
           "--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parent.parent)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout:.0f} s"}
    if done.returncode != 0:
        return {"skipped": f"failed (exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]})"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def predicted_skip(kind: str, last: dict | None, ratio: float, time_cap: float, memory_cap_mb: float) -> str | None:
    """Skip a length when the previous one, scaled by the kind's known exponent, would break a cap."""
    if last is None:
        return None
    if "skipped" in last:
        return "longer sequence skipped too"
    seconds = last["seconds"] * ratio ** (2 if kind in QUADRATIC_TIME else 1)
    memory = last["peak_mb"] * ratio ** (2 if kind in QUADRATIC_MEMORY else 1)
    if memory > memory_cap_mb:
        return f"predicted {memory / 1024:.0f} GB > {memory_cap_mb / 1024:.0f} GB cap"
    if seconds > time_cap:
        return f"predicted {seconds:.0f} s > {time_cap:.0f} s cap"
    return None


def fit_exponent(points: list[tuple[int, float]], min_len: int) -> float | None:
    """Least-squares slope of log(y) on log(T), over lengths >= min_len (short ones are overhead-bound)."""
    pts = [(math.log(t), math.log(y)) for t, y in points if t >= min_len and y > 0]
    if len(pts) < 2:
        return None
    mx, my = statistics.fmean(p[0] for p in pts), statistics.fmean(p[1] for p in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def sweep(scope: str, lengths: list[int], args) -> dict:
    results: dict = {}
    for kind in KINDS:
        results[kind] = {}
        last, last_len = None, None
        for t in lengths:
            reason = predicted_skip(kind, last, t / (last_len or t), args.time_cap, args.memory_cap_gb * 1024)
            row = {"skipped": reason} if reason else spawn(scope, kind, t, args.threads, args.time_cap * 4)
            results[kind][t] = row
            shown = row.get("skipped") or f"{row['seconds']:.2f} s  {row['peak_mb']:.0f} MB"
            print(f"{scope:5s} {kind:15s} {t:6d}  {shown}", flush=True)
            last, last_len = row, t
    return results


def summarise(results: dict, min_len: int) -> dict:
    out = {}
    for kind, rows in results.items():
        ok = [(t, r) for t, r in rows.items() if "seconds" in r]
        out[kind] = {
            "time_exponent": fit_exponent([(t, r["seconds"]) for t, r in ok], min_len),
            "memory_exponent": fit_exponent([(t, r["peak_mb"]) for t, r in ok], min_len),
        }
    return out


def table(scope: str, results: dict, fits: dict, lengths: list[int]) -> str:
    head = "| kind | " + " | ".join(f"{t // 1024}k" for t in lengths) + " | time exp. | memory exp. |"
    lines = [f"**{scope}** — seconds / peak MB of one forward + backward", "", head,
             "|" + "---|" * (len(lengths) + 3)]
    for kind, rows in results.items():
        cells = []
        for t in lengths:
            r = rows.get(t, {})
            cells.append(f"{r['seconds']:.2f} s / {r['peak_mb']:.0f}" if "seconds" in r else "skipped")
        f = fits[kind]
        exps = [f"{f[k]:.2f}" if f[k] is not None else "-" for k in ("time_exponent", "memory_exponent")]
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {exps[0]} | {exps[1]} |")
    return "\n".join(lines)


def figure(scope: str, results: dict, fits: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, rows in results.items():
        ok = sorted((t, r) for t, r in rows.items() if "seconds" in r)
        if not ok:
            continue
        xs = [t for t, _ in ok]
        exp = fits[kind]["time_exponent"]
        label = f"{kind} (T^{exp:.2f})" if exp is not None else kind
        style = "--" if kind in QUADRATIC_TIME else "-"
        axes[0].loglog(xs, [r["seconds"] for _, r in ok], style, marker="o", label=label)
        axes[1].loglog(xs, [r["peak_mb"] for _, r in ok], style, marker="o", label=kind)
    for ax, title in zip(axes, ("time of forward + backward (s)", "peak memory (MB)"), strict=True):
        ax.set_xlabel("sequence length (tokens)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"attention kinds, {scope}: dashed = dense (quadratic), solid = long-context kinds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k-4k tokens: a smoke run")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--time-cap", type=float, default=40.0, help="skip lengths predicted to take longer (s)")
    parser.add_argument("--memory-cap-gb", type=float, default=10.0, help="skip lengths predicted to need more")
    parser.add_argument("--scopes", nargs="+", default=["layer", "model"], choices=["layer", "model"])
    parser.add_argument("--out", type=Path, default=FIGURES, help="folder for the PNG figures and JSON")
    parser.add_argument("--case", nargs=3, metavar=("SCOPE", "KIND", "LEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        scope, kind, t = args.case
        print(json.dumps(run_case(scope, kind, int(t), args.threads)))
        return
    lengths = [1024, 2048, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384, 32768]
    min_len = 1024 if args.quick else 2048
    torch.set_num_threads(args.threads)
    report = {"threads": args.threads, "load_before": os.getloadavg()[0], "torch": torch.__version__,
              "machine": machine()}
    print(machine_line(report["machine"]), flush=True)
    started = time.perf_counter()
    for scope in args.scopes:
        results = sweep(scope, lengths if scope == "layer" else lengths[:-1], args)
        fits = summarise(results, min_len)
        print("\n" + table(scope, results, fits, lengths if scope == "layer" else lengths[:-1]) + "\n")
        figure(scope, results, fits, args.out / f"long_attention_{scope}.png")
        report[scope] = {"results": results, "fits": fits}
    report["load_after"], report["minutes"] = os.getloadavg()[0], (time.perf_counter() - started) / 60
    (args.out / "long_attention.json").write_text(json.dumps(report, indent=1))
    print(f"load average {report['load_before']:.1f} -> {report['load_after']:.1f}; {report['minutes']:.1f} min; "
          f"figures in {args.out}")


if __name__ == "__main__":
    main()
