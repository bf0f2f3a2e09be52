"""Where one decoding step's time goes, by part: formers with fp32, int8 and int4 weights against Hugging Face.

Batch 1, greedy, a 32-token prompt, the models of `benchmarks.gpt_vs_hf`. The profiler starts when the first
new token arrives (a streamer), so the prompt's forward (prefill) is left out and every step profiled is a
one-token decoding step. Operators are grouped by their self CPU time:

  LM head              the product whose weight has the vocabulary as a dimension
  other linear layers  qkv, attention output, feed-forward (fp32 addmm / mm, or the int8 / int4 kernel)
  attention            SDPA's kernel
  KV cache writes      copies into 4-D (B, H, T, D_h) cache slices (Hugging Face's cache concatenates:
                       its `cat` falls under the rest)
  casts                dtype conversions (int8 and int4 layers cast activations to bf16 and back)
  the rest             norms, GELU, residual adds, views, the sampling loop's own ops

and "Python and dispatch" is the step's wall time without the profiler minus the operators' self time
with it: what the interpreter and torch's dispatcher cost beyond the kernels (an estimate: the profiler
itself inflates operator times a little, so this share is if anything understated).

    .venv/bin/python -m benchmarks.profile_decode --shape gpt2
    .venv/bin/python -m benchmarks.profile_decode --shape small --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import machine, machine_line
from benchmarks.generation import prepared
from benchmarks.shapes import SHAPES
from formers.nn.int4_linear import OUTPUT_MULTIPLE

CONFIGS = (("hf", "fp32"), ("formers", "fp32"), ("formers", "int8"), ("formers", "int4"))
MATMULS = ("addmm", "mm", "linear", "_weight_int8pack_mm", "_weight_int4pack_mm_for_cpu", "matmul")


def part_of(name: str, shapes: list, vocab: int) -> str:
    bare = name.removeprefix("aten::")
    if bare in MATMULS:  # int4 weights hold the vocabulary padded to a multiple of 16 rows (int4_linear.py)
        head_rows = (vocab, vocab + -vocab % OUTPUT_MULTIPLE)
        return "LM head" if any(d in head_rows for s in shapes if s for d in s) else "other linear layers"
    if "scaled_dot_product" in bare or "flash_attention" in bare:
        return "attention"
    if bare in ("copy_", "cat", "index_copy_") and any(len(s) == 4 for s in shapes if s):
        return "KV cache writes"
    if bare in ("_to_copy", "copy_", "to"):
        return "casts"
    return "the rest"


class StartOnFirstToken:
    """A streamer for either library: starts `prof` at the first new token, records when each arrives."""

    def __init__(self, prof, hf: bool) -> None:
        self.prof, self.times, self.skip = prof, [], hf  # Hugging Face first puts the prompt

    def put(self, value) -> None:
        if self.skip:
            self.skip = False
            return
        self.times.append(time.perf_counter())
        if len(self.times) == 1 and self.prof is not None:
            self.prof.start()

    def end(self) -> None:
        pass

    __call__ = put


def decode(lib: str, model, ids: torch.Tensor, new_tokens: int, prof) -> list[float]:
    from formers.generation import generate

    streamer = StartOnFirstToken(prof, hf=lib == "hf")
    with torch.no_grad():
        if lib == "hf":
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                           pad_token_id=0, streamer=streamer)
        else:
            generate(model, ids, max_new_tokens=new_tokens, streamer=streamer)
    if prof is not None:
        prof.stop()
    return streamer.times


def profile_config(lib: str, weights: str, shape: str, new_tokens: int) -> dict[str, float]:
    """Milliseconds per decoding step, by part."""
    s = SHAPES[shape]
    model = prepared(lib, weights, s)
    ids = torch.randint(1, s.vocab, (1, 32), generator=torch.Generator().manual_seed(1))
    decode(lib, model, ids, 8, None)  # warm up
    times = decode(lib, model, ids, new_tokens, None)
    steps = len(times) - 1
    wall_ms = 1e3 * (times[-1] - times[0]) / steps
    prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
    decode(lib, model, ids, new_tokens, prof)
    parts: dict[str, float] = defaultdict(float)
    for e in prof.key_averages(group_by_input_shape=True):
        parts[part_of(e.key, e.input_shapes, s.vocab)] += e.self_cpu_time_total / 1e3 / steps
    parts["Python and dispatch"] = max(wall_ms - sum(parts.values()), 0.0)
    return {"step_ms": wall_ms, **parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="gpt2")
    parser.add_argument("--new-tokens", type=int, default=33)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(machine()))
    rows = {f"{lib} {w}": profile_config(lib, w, args.shape, args.new_tokens) for lib, w in CONFIGS}
    parts = ["LM head", "other linear layers", "attention", "KV cache writes", "casts", "the rest",
             "Python and dispatch"]
    print(f"\n| one decoding step, shape {args.shape}, ms | step | " + " | ".join(parts) + " |")
    print("|---" * (len(parts) + 2) + "|")
    for key, r in rows.items():
        print(f"| {key} | {r['step_ms']:.2f} | " + " | ".join(f"{r.get(p, 0.0):.2f}" for p in parts) + " |")


if __name__ == "__main__":
    main()
