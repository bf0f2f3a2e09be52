"""formers' GPT against Hugging Face GPT2LMHeadModel and x-transformers, at the same shapes, in one command.

Timings are taken round-robin in one process (one step of each library in turn, repeated, median
per library), so a burst of load from other jobs on a shared machine hits every library alike and
the ratios hold; peak memory comes from one fresh process per configuration, so allocator caches
never mix.

  train tok/s  each library's ordinary training step on one fixed batch: formers through
               `Trainer.train_step` (CausalLM objective, gradient clipping, fused AdamW); the
               references as forward, F.cross_entropy on fp32 logits, backward, clipping, fused AdamW.
               fp32 and bf16 autocast for all; formers also bf16-pure (bf16 weights, fp32 masters)
               and, with --compile, bf16-pure under torch.compile.
  MFU          (6N + 12 L T D) FLOPs per token (PaLM, app. B) against the dense 4096^3 matmul peak of
               the same dtype: the best of the measurements taken between the rounds of the same run.
  memory       the kernel's peak resident set (VmHWM) over two training steps minus the resident set
               once the model and batch were built: what training adds (gradients, optimizer state,
               activations, casts; formers' bf16-pure also its fp32 masters).
  generate     greedy, 128 new tokens, each library's KV cache, fp32 and bf16 weights, and formers with
               int8 and int4 weights: batch 1 with a 32-token prompt, and batch 8 with left-padded prompts of 4, 8,
               ..., 32 tokens; round-robin in one process; prefill and decode timed apart, against the
               bandwidth-bound ceiling of each weight format (benchmarks/generation.py). Run once as
               dispatched and once more (fp32, int8, int4) under AVX2 emulation, unless --no-avx2-decode.

    .venv/bin/python -m benchmarks.gpt_vs_hf                  # both shapes (~30 minutes on 2 quiet cores)
    .venv/bin/python -m benchmarks.gpt_vs_hf --shape small    # or --shape gpt2
    .venv/bin/python -m benchmarks.gpt_vs_hf --quick          # a smoke run in about a minute
    .venv/bin/python -m benchmarks.gpt_vs_hf --shape small --fp32-only --emulate-avx2   # as on an AVX2 laptop
    .venv/bin/python -m benchmarks.gpt_vs_hf --skip-train     # generation alone (issue 14's ratios)

Every run starts with the machine its workers see (CPU model, ATen kernels, bf16 hardware, oneDNN bf16,
matmul peaks measured then); `--emulate-avx2` starts the workers with common.AVX2_ENV.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch
from torch.nn import functional as F

from benchmarks import generation
from benchmarks.common import (
    AVX2_ENV,
    gpt_train_flops_per_token,
    machine,
    machine_line,
    matmul_peak,
    median_time,
    peak_rss_mb,
    report,
    reset_peak_rss,
    rss_mb,
    run_worker,
)
from benchmarks.shapes import LIBS, SHAPES, build

MODULE = "benchmarks.gpt_vs_hf"

def logits_of(lib: str, model, ids: torch.Tensor) -> torch.Tensor:
    out = model(ids)
    return out if lib == "x-transformers" else out.logits


# ---- training ---------------------------------------------------------------------------------------------------
def reference_step(lib: str, model, ids: torch.Tensor, precision: str):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = logits_of(lib, model, ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


class FixedBatch:
    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def next_batch(self) -> dict:
        return self.batch

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def formers_step(model, ids: torch.Tensor, precision: str, compile: bool):
    from formers.objectives import CausalLM
    from formers.training import Trainer, TrainerConfig

    config = TrainerConfig(precision=precision, compile=compile, progress=False, tensorboard=False,
                           optimizer={"lr": 1e-4})
    source = FixedBatch({"input_ids": ids[:, :-1], "labels": ids[:, 1:]})
    return Trainer(model, CausalLM(), source, config=config, out_dir=tempfile.mkdtemp()).train_step


def train_configs(compile: bool, dtypes: tuple[str, ...] = ("fp32", "bf16")) -> list[tuple[str, str]]:
    """(lib, precision) pairs, in the order they are reported."""
    configs = [(lib, p) for p in dtypes for lib in LIBS]
    if "bf16" not in dtypes:
        return configs
    configs += [("formers", "bf16-pure")]
    return configs + [("formers", "bf16-pure+compile")] if compile else configs


def make_step(lib: str, precision: str, model, ids: torch.Tensor):
    if lib == "formers":
        return formers_step(model, ids, precision.split("+")[0], precision.endswith("+compile"))
    return reference_step(lib, model, ids, precision)


def train_timing_worker(spec: dict) -> dict:
    """Steps of every configuration of one dtype, round-robin; tokens/s from the median step."""
    s, dtype = SHAPES[spec["shape"]], spec["dtype"]
    configs = [(lib, p) for lib, p in train_configs(spec["compile"]) if (p == "fp32") == (dtype == "fp32")]
    ids = torch.randint(0, s.vocab, (s.batch, s.seq + 1), generator=torch.Generator().manual_seed(0))
    steps, params = {}, {}
    for lib, precision in configs:
        model = build(lib, s).train()
        params[f"{lib} {precision}"] = sum(p.numel() for p in model.parameters())
        steps[f"{lib} {precision}"] = make_step(lib, precision, model, ids)
    for step in steps.values():  # warm up (compile: twice, to be past recompiles)
        step()
    if spec["compile"]:
        steps["formers bf16-pure+compile"]()
    matmul_dtype, n = (torch.float32 if dtype == "fp32" else torch.bfloat16), (512 if s.layers < 4 else 4096)
    peaks, times = [], {k: [] for k in steps}
    for _ in range(s.repeats):
        peaks.append(matmul_peak(matmul_dtype, n, repeats=2))
        for key, step in steps.items():
            times[key].append(median_time(step, warmup=0, repeats=1))
    peak = max(peaks)
    out = {}
    for key, seconds in times.items():
        tokens_per_s = s.batch * s.seq / sorted(seconds)[len(seconds) // 2]
        flops = gpt_train_flops_per_token(params[key], s.layers, s.d, s.seq)
        out[key] = {"tokens_per_s": tokens_per_s, "mfu": tokens_per_s * flops / peak, "peak_gflops": peak / 1e9}
    return out


def train_memory_worker(spec: dict) -> dict:
    """What two training steps of one configuration add to the resident set."""
    s, lib, precision = SHAPES[spec["shape"]], spec["lib"], spec["precision"]
    if lib == "formers":  # imported before the baseline: module code is not training memory
        import formers.objectives  # noqa: F401
        import formers.training  # noqa: F401
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)  # its first use loads ~70 MB of code
    model = build(lib, s).train()
    ids = torch.randint(0, s.vocab, (s.batch, s.seq + 1), generator=torch.Generator().manual_seed(0))
    base = rss_mb()
    reset_peak_rss()
    step = make_step(lib, precision, model, ids)
    step()
    step()
    return {"memory_mb": peak_rss_mb() - base}


# ---- the report ---------------------------------------------------------------------------------------------------
def bench_shape(name: str, args, env: dict | None) -> dict:
    s, threads = SHAPES[name], args.threads
    dtypes = ("fp32",) if args.fp32_only else ("fp32", "bf16")
    print(f"\n## {name}: {s.layers} layers, d={s.d}, {s.heads} heads, seq {s.seq}, vocab {s.vocab}, batch {s.batch}; "
          f"{threads} threads; load {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    if not args.skip_train:
        results["train"] = bench_train(name, threads, args.compile, dtypes, env)
    repeats = {"quick": 1, "small": 3, "gpt2": 3}[name]
    spec = {"task": "generate", "shape": name, "repeats": repeats, "dtypes": dtypes}
    gen = run_worker(MODULE, spec, threads, env)
    results["generate"] = gen
    results["generate_ratios"] = generation.report(gen, "as dispatched" if env is None else "AVX2 emulated")
    if env is None and not args.no_avx2_decode:  # the same decoding as on an AVX2-only CPU (fp32, int8, int4)
        gen = run_worker(MODULE, {**spec, "dtypes": ("fp32",)}, threads, AVX2_ENV)
        results["generate_avx2"] = gen
        results["generate_avx2_ratios"] = generation.report(gen, "AVX2 emulated")
    print(f"load after: {os.getloadavg()[0]:.1f}", flush=True)
    return results


def bench_train(name: str, threads: int, compile: bool, dtypes: tuple[str, ...], env: dict | None) -> dict:
    train = {}
    for dtype in dtypes:
        spec = {"task": "train", "shape": name, "dtype": dtype, "compile": compile}
        train.update(run_worker(MODULE, spec, threads, env))
    for lib, precision in train_configs(compile, dtypes):
        spec = {"task": "memory", "shape": name, "lib": lib, "precision": precision}
        train[f"{lib} {precision}"].update(run_worker(MODULE, spec, threads, env))
    print("\n| train | tokens/s | MFU | memory added, MB |\n|---|---|---|---|")
    for key, r in train.items():
        print(f"| {key} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} | {r['memory_mb']:,.0f} |")
    peaks = {p: r["peak_gflops"] for k, r in train.items() for p in dtypes if k.endswith(" " + p)}
    print("matmul peak (best of the run): " + ", ".join(f"{p} {v:,.0f} GFLOP/s" for p, v in peaks.items()))
    ratios(train, dtypes)
    return train


def ratios(train: dict, dtypes: tuple[str, ...]) -> None:
    rate = {k: v["tokens_per_s"] for k, v in train.items()}
    memory = {k: v["memory_mb"] for k, v in train.items()}
    if "bf16" not in dtypes:
        print(f"\nformers / hf: train fp32 {rate['formers fp32'] / rate['hf fp32']:.2f}; formers / x-transformers: "
              f"fp32 {rate['formers fp32'] / rate['x-transformers fp32']:.2f}")
        print(f"memory formers / hf: fp32 {memory['formers fp32'] / memory['hf fp32']:.2f}")
        return
    best_bf16 = max(rate["formers bf16"], rate["formers bf16-pure"])
    print(f"\nformers / hf: train fp32 {rate['formers fp32'] / rate['hf fp32']:.2f}, "
          f"bf16 {rate['formers bf16'] / rate['hf bf16']:.2f} (autocast), {best_bf16 / rate['hf bf16']:.2f} (best); "
          f"formers / x-transformers: fp32 {rate['formers fp32'] / rate['x-transformers fp32']:.2f}, "
          f"bf16 {best_bf16 / rate['x-transformers bf16']:.2f}")
    print(f"memory formers / hf: fp32 {memory['formers fp32'] / memory['hf fp32']:.2f}, "
          f"bf16 {memory['formers bf16'] / memory['hf bf16']:.2f}, "
          f"bf16-pure {memory['formers bf16-pure'] / memory['hf bf16']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["small", "gpt2", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="a tiny shape, few repeats: a smoke test")
    parser.add_argument("--compile", action="store_true", help="also time formers with trainer.compile=true")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--fp32-only", action="store_true", help="skip bf16 (emulated, slow, without AMX/AVX512-BF16)")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="workers dispatch as on an AVX2-only CPU (benchmarks.common.AVX2_ENV)")
    parser.add_argument("--skip-train", action="store_true", help="generation only")
    parser.add_argument("--no-avx2-decode", action="store_true",
                        help="skip the second generation run under AVX2 emulation (benchmarks.common.AVX2_ENV)")
    parser.add_argument("--json", type=str, default=None, help="also write every figure to this file")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        spec = json.loads(args.worker)
        workers = {"train": train_timing_worker, "memory": train_memory_worker, "generate": generation.generate_worker,
                   "machine": lambda spec: machine()}
        report(workers[spec["task"]](spec))
        return
    names = ["quick"] if args.quick else ["small", "gpt2"] if args.shape == "all" else [args.shape]
    env = AVX2_ENV if args.emulate_avx2 else None
    results = {"machine": run_worker(MODULE, {"task": "machine"}, args.threads, env)}
    print(machine_line(results["machine"]), flush=True)
    results.update({name: bench_shape(name, args, env) for name in names})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
