"""Where one training step's time goes: torch.profiler over formers' step and Hugging Face's, same shape.

Builds the models and steps of `benchmarks.gpt_vs_hf` (so the profile is of exactly what the
benchmark times), runs one warm-up step each, then profiles `--steps` steps and prints the
operators by self CPU time, grouped into matmuls, attention, the loss, elementwise work and the
optimizer, plus the top operators.

    .venv/bin/python -m benchmarks.profile_step --shape gpt2 --precision bf16-pure
    .venv/bin/python -m benchmarks.profile_step --shape small --precision fp32 --libs formers hf
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import machine, machine_line
from benchmarks.gpt_vs_hf import LIBS, SHAPES, build, make_step

# Operator name fragments -> the part of the step they belong to (first match wins).
PARTS = (
    ("matmul", ("addmm", "mm", "bmm", "linear", "matmul")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "logsumexp")),
    ("optimizer", ("_fused_adam", "adam", "_foreach")),
    ("norm", ("layer_norm", "rms_norm")),
    ("gelu / activation", ("gelu", "silu", "tanh")),
    ("copies and casts", ("copy_", "to_copy", "_to_copy", "clone", "contiguous", "cat")),
    ("fills", ("fill_", "zero_", "zeros", "empty")),
)


def part_of(name: str) -> str:
    bare = name.removeprefix("aten::")
    for part, fragments in PARTS:
        if any(bare == f or bare.startswith(f) or f in bare for f in fragments):
            return part
    return "other elementwise / indexing"


def profile_lib(lib: str, shape: str, precision: str, steps: int, top: int) -> None:
    s = SHAPES[shape]
    model = build(lib, s).train()
    ids = torch.randint(0, s.vocab, (s.batch, s.seq + 1), generator=torch.Generator().manual_seed(0))
    step = make_step(lib, precision, model, ids)
    step()  # warm up: allocations, optimizer state, kernel selection
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    parts: dict[str, float] = defaultdict(float)
    for e in events:
        parts[part_of(e.key)] += e.self_cpu_time_total
    print(f"\n## {lib} {precision}, shape {shape}: {total / 1e6 / steps:.2f} s of operator time per step")
    print("\n| part | s per step | share |\n|---|---|---|")
    for part, t in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {t / 1e6 / steps:.3f} | {t / total:.1%} |")
    print(f"\n| top {top} operators (self CPU) | calls per step | s per step | share |\n|---|---|---|---|")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"| {e.key} | {e.count // steps} | {e.self_cpu_time_total / 1e6 / steps:.3f} | "
              f"{e.self_cpu_time_total / total:.1%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--precision", choices=["fp32", "bf16", "bf16-pure"], default="bf16")
    parser.add_argument("--libs", nargs="+", choices=LIBS, default=["formers", "hf"])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(machine()))
    for lib in args.libs:
        if args.precision == "bf16-pure" and lib != "formers":
            print(f"\n## {lib}: no bf16-pure mode; profiled with bf16 autocast")
        precision = "bf16" if args.precision == "bf16-pure" and lib != "formers" else args.precision
        profile_lib(lib, args.shape, precision, args.steps, args.top)


if __name__ == "__main__":
    main()
