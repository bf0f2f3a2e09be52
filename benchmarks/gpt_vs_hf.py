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
  generate     greedy, 128 new tokens, each library's KV cache, fp32 and bf16 weights: batch 1 with a
               32-token prompt, and batch 8 with left-padded prompts of 4, 8, ..., 32 tokens; also
               round-robin in one process.

    .venv/bin/python -m benchmarks.gpt_vs_hf                  # both shapes (~30 minutes on 2 quiet cores)
    .venv/bin/python -m benchmarks.gpt_vs_hf --shape small    # or --shape gpt2
    .venv/bin/python -m benchmarks.gpt_vs_hf --quick          # a smoke run in about a minute
    .venv/bin/python -m benchmarks.gpt_vs_hf --shape small --fp32-only --emulate-avx2   # as on an AVX2 laptop

Every run starts with the machine its workers see (CPU model, ATen kernels, bf16 hardware, oneDNN bf16,
matmul peaks measured then); `--emulate-avx2` starts the workers with common.AVX2_ENV.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile

import torch
from torch.nn import functional as F

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

LIBS = ("hf", "x-transformers", "formers")
NEW_TOKENS = 128


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    d: int
    heads: int
    seq: int
    vocab: int
    batch: int
    repeats: int  # timed training steps (after one warm-up)


SHAPES = {
    "quick": Shape(layers=2, d=64, heads=2, seq=32, vocab=512, batch=2, repeats=2),
    "small": Shape(layers=6, d=384, heads=6, seq=256, vocab=8192, batch=8, repeats=5),  # the foundation's shape
    "gpt2": Shape(layers=12, d=768, heads=12, seq=512, vocab=50257, batch=4, repeats=3),  # GPT-2 124M
}


def build(lib: str, s: Shape) -> torch.nn.Module:
    """The same GPT-2 architecture in each library (learned positions, pre-norm, tied head, no dropout)."""
    torch.manual_seed(0)
    positions = s.seq + NEW_TOKENS + 32  # room for the generation runs
    if lib == "hf":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(GPT2Config(
            n_layer=s.layers, n_embd=s.d, n_head=s.heads, n_positions=positions, vocab_size=s.vocab,
            attn_implementation="sdpa", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
            eos_token_id=None,
        ))
    if lib == "x-transformers":
        from x_transformers import Decoder, TransformerWrapper

        return TransformerWrapper(
            num_tokens=s.vocab, max_seq_len=positions, tie_embedding=True,
            attn_layers=Decoder(dim=s.d, depth=s.layers, heads=s.heads, attn_flash=True),
        )
    from formers.models import GPT, GPTConfig

    return GPT(GPTConfig(
        n_layers=s.layers, d_model=s.d, n_heads=s.heads, max_seq_len=positions, vocab_size=s.vocab,
        activation="gelu_tanh", dropout=0.0,
    ))


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


# ---- generation -------------------------------------------------------------------------------------------------
def generate_fn(lib: str, model, prompts: list[torch.Tensor]):
    """A call producing NEW_TOKENS greedy tokens after each prompt, with the library's own KV cache."""
    from formers.generation import generate, left_pad

    ids, mask = left_pad([p.tolist() for p in prompts], pad_id=0)
    if lib == "hf":
        return lambda: model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                                      min_new_tokens=NEW_TOKENS, do_sample=False, use_cache=True, pad_token_id=0)
    if lib == "x-transformers":
        from x_transformers import AutoregressiveWrapper

        wrapper = AutoregressiveWrapper(model)
        batch = torch.stack(prompts) if len({len(p) for p in prompts}) == 1 else prompts
        return lambda: wrapper.generate(batch, NEW_TOKENS, temperature=0.0, cache_kv=True)
    return lambda: generate(model, ids, attention_mask=mask if len(prompts) > 1 else None,
                            max_new_tokens=NEW_TOKENS)


def generate_worker(spec: dict) -> dict:
    """Every library, dtype and batch, round-robin; tokens/s from the median run."""
    s = SHAPES[spec["shape"]]
    models = {lib: build(lib, s).eval() for lib in LIBS}
    g = torch.Generator().manual_seed(1)
    prompts = {"batch1": [torch.randint(1, s.vocab, (32,), generator=g)],
               "batch8": [torch.randint(1, s.vocab, (n,), generator=g) for n in range(4, 33, 4)]}
    out = {}
    for dtype in spec["dtypes"]:
        for model in models.values():
            model.to(torch.float32 if dtype == "fp32" else torch.bfloat16)
        runs = {(lib, name): generate_fn(lib, models[lib], p) for name, p in prompts.items() for lib in LIBS}
        times = {key: [] for key in runs}
        with torch.no_grad():
            for run in runs.values():
                run()  # warm up
            for _ in range(spec["repeats"]):
                for key, run in runs.items():
                    times[key].append(median_time(run, warmup=0, repeats=1))
        for (lib, name), seconds in times.items():
            median = sorted(seconds)[len(seconds) // 2]
            out.setdefault(lib, {})[f"{dtype}/{name}"] = len(prompts[name]) * NEW_TOKENS / median
    return out


# ---- the report ---------------------------------------------------------------------------------------------------
def bench_shape(name: str, threads: int, compile: bool, dtypes: tuple[str, ...], env: dict | None) -> dict:
    s = SHAPES[name]
    print(f"\n## {name}: {s.layers} layers, d={s.d}, {s.heads} heads, seq {s.seq}, vocab {s.vocab}, batch {s.batch}; "
          f"{threads} threads; load {os.getloadavg()[0]:.1f}", flush=True)
    module = "benchmarks.gpt_vs_hf"
    train = {}
    for dtype in dtypes:
        spec = {"task": "train", "shape": name, "dtype": dtype, "compile": compile}
        train.update(run_worker(module, spec, threads, env))
    for lib, precision in train_configs(compile, dtypes):
        spec = {"task": "memory", "shape": name, "lib": lib, "precision": precision}
        train[f"{lib} {precision}"].update(run_worker(module, spec, threads, env))
    print("\n| train | tokens/s | MFU | memory added, MB |\n|---|---|---|---|")
    for key, r in train.items():
        print(f"| {key} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} | {r['memory_mb']:,.0f} |")
    peaks = {p: r["peak_gflops"] for k, r in train.items() for p in dtypes if k.endswith(" " + p)}
    print("matmul peak (best of the run): " + ", ".join(f"{p} {v:,.0f} GFLOP/s" for p, v in peaks.items()))
    repeats = {"quick": 1, "small": 3, "gpt2": 3}[name]
    gen = run_worker(module, {"task": "generate", "shape": name, "repeats": repeats, "dtypes": dtypes}, threads, env)
    columns = [f"{d}/batch{b}" for d in dtypes for b in (1, 8)]
    print("\n| generate, tokens/s | " + " | ".join(c.replace("/batch", " batch ") for c in columns) + " |\n|---"
          + "|---" * len(columns) + "|")
    for lib in LIBS:
        print(f"| {lib} | " + " | ".join(f"{gen[lib][k]:,.1f}" for k in columns) + " |")
    ratios(train, gen, dtypes)
    print(f"load after: {os.getloadavg()[0]:.1f}", flush=True)
    return {"train": train, "generate": gen}


def ratios(train: dict, gen: dict, dtypes: tuple[str, ...]) -> None:
    rate = {k: v["tokens_per_s"] for k, v in train.items()}
    gen_ratios = ", ".join(f"{k} {gen['formers'][k] / gen['hf'][k]:.2f}" for k in gen["formers"])
    memory = {k: v["memory_mb"] for k, v in train.items()}
    if "bf16" not in dtypes:
        print(f"\nformers / hf: train fp32 {rate['formers fp32'] / rate['hf fp32']:.2f}; formers / x-transformers: "
              f"fp32 {rate['formers fp32'] / rate['x-transformers fp32']:.2f}")
        print(f"formers / hf generate: {gen_ratios}")
        print(f"memory formers / hf: fp32 {memory['formers fp32'] / memory['hf fp32']:.2f}")
        return
    best_bf16 = max(rate["formers bf16"], rate["formers bf16-pure"])
    print(f"\nformers / hf: train fp32 {rate['formers fp32'] / rate['hf fp32']:.2f}, "
          f"bf16 {rate['formers bf16'] / rate['hf bf16']:.2f} (autocast), {best_bf16 / rate['hf bf16']:.2f} (best); "
          f"formers / x-transformers: fp32 {rate['formers fp32'] / rate['x-transformers fp32']:.2f}, "
          f"bf16 {best_bf16 / rate['x-transformers bf16']:.2f}")
    print(f"formers / hf generate: {gen_ratios}")
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
    parser.add_argument("--json", type=str, default=None, help="also write every figure to this file")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker is not None:
        spec = json.loads(args.worker)
        workers = {"train": train_timing_worker, "memory": train_memory_worker, "generate": generate_worker,
                   "machine": lambda spec: machine()}
        report(workers[spec["task"]](spec))
        return
    names = ["quick"] if args.quick else ["small", "gpt2"] if args.shape == "all" else [args.shape]
    env, dtypes = (AVX2_ENV if args.emulate_avx2 else None), (("fp32",) if args.fp32_only else ("fp32", "bf16"))
    results = {"machine": run_worker("benchmarks.gpt_vs_hf", {"task": "machine"}, args.threads, env)}
    print(machine_line(results["machine"]), flush=True)
    results.update({name: bench_shape(name, args.threads, args.compile, dtypes, env) for name in names})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
