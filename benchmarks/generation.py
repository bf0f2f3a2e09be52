"""Greedy generation speed: formers with fp32, int8, int4 and bf16 weights against Hugging Face and x-transformers.

Each library decodes NEW_TOKENS greedy tokens with its own KV cache: batch 1 after a 32-token prompt, and
batch 8 after left-padded prompts of 4, 8, ..., 32 tokens. Every run is timed twice, whole and with one new
token (the prompt's forward, "prefill"); decode tokens/s = rows x (NEW_TOKENS - 1) / (whole - prefill). All
configurations of one weight dtype run round-robin in one process, median per configuration, so load from
other jobs hits every library alike.

Decoding at batch 1 reads every weight matrix once per token, so its speed is capped by memory bandwidth:
ceiling = bandwidth / bytes of the weight matrices (the linear layers and the LM head; the embedding lookup,
norms and the KV cache are left out). Batch 8 reads them once per 8 tokens: 8x the ceiling. Bandwidth is
measured in the same worker, as the rate a matrix-vector product reads a 512 MiB fp32 matrix (the access
pattern of decoding, bigger than any cache). A model that fits in the CPU's last-level cache can beat it.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.common import median_time
from benchmarks.shapes import NEW_TOKENS, SHAPES, build

# weight dtype round -> (library, weights) configurations timed together; formers int8 and int4 run with the fp32
# round, since their speed is judged against the references' fp32 `generate`. "compiled": `generate(compile=True)`,
# timed after the warm-up call that compiles (its time is reported apart, as `compile_s`)
CONFIGS = {
    "fp32": (("hf", "fp32"), ("x-transformers", "fp32"), ("formers", "fp32"), ("formers", "int8"), ("formers", "int4"),
             ("formers", "fp32 compiled"), ("formers", "int8 compiled"), ("formers", "int4 compiled")),
    "bf16": (("hf", "bf16"), ("x-transformers", "bf16"), ("formers", "bf16")),
}
REFERENCE = "hf fp32"  # what the targets divide by


def prepared(lib: str, weights: str, shape) -> nn.Module:
    from formers import quantize_weights

    model = build(lib, shape).eval()
    if lib == "formers":
        return quantize_weights(model, weights.removesuffix(" compiled"))
    return model.to(torch.float32 if weights == "fp32" else torch.bfloat16)


def generate_fn(lib: str, model, prompts: list[torch.Tensor], new_tokens: int, compile: bool = False):
    """A call producing `new_tokens` greedy tokens after each prompt, with the library's own KV cache."""
    from formers.generation import generate, left_pad

    ids, mask = left_pad([p.tolist() for p in prompts], pad_id=0)
    if lib == "hf":
        return lambda: model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=False, use_cache=True, pad_token_id=0)
    if lib == "x-transformers":
        from x_transformers import AutoregressiveWrapper

        wrapper = AutoregressiveWrapper(model)
        batch = torch.stack(prompts) if len({len(p) for p in prompts}) == 1 else prompts
        return lambda: wrapper.generate(batch, new_tokens, temperature=0.0, cache_kv=True)
    return lambda: generate(model, ids, attention_mask=mask if len(prompts) > 1 else None,
                            max_new_tokens=new_tokens, compile=compile)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the matrices one decoding step reads: every linear layer (its weight, scales and bias)."""
    from formers.nn.weight_formats import QUANTIZED_LAYERS

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, *QUANTIZED_LAYERS.values()))]
    return sum(t.numel() * t.element_size() for m in layers for t in (*m.parameters(), *m.buffers()))


def read_bandwidth(mib: int = 512) -> float:
    """Bytes/s at which a matrix-vector product reads an fp32 matrix of `mib` MiB: the best of 3."""
    k = 4096
    w, x = torch.randn(mib * 2**20 // (4 * k), k), torch.randn(1, k)
    F.linear(x, w)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        F.linear(x, w)
        times.append(time.perf_counter() - start)
    return w.numel() * 4 / min(times)


def prompts_for(vocab: int) -> dict[str, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return {"batch1": [torch.randint(1, vocab, (32,), generator=g)],
            "batch8": [torch.randint(1, vocab, (n,), generator=g) for n in range(4, 33, 4)]}


def generate_worker(spec: dict) -> dict:
    """Every configuration of the requested weight dtypes and both batches, round-robin."""
    s, prompts = SHAPES[spec["shape"]], prompts_for(SHAPES[spec["shape"]].vocab)
    out: dict = {"bandwidth_gbs": read_bandwidth() / 1e9, "weight_mb": {}, "runs": {}, "compile_s": {}}
    for dtype in spec["dtypes"]:
        models = {f"{lib} {w}": (lib, prepared(lib, w, s)) for lib, w in CONFIGS[dtype]}
        out["weight_mb"].update({k: weight_bytes(m) / 1e6 for k, (lib, m) in models.items() if lib == "formers"})
        runs = {(key, name, n): generate_fn(lib, model, p, n, compile=key.endswith("compiled"))
                for key, (lib, model) in models.items() for name, p in prompts.items() for n in (NEW_TOKENS, 1)}
        times = {key: [] for key in runs}
        with torch.no_grad():
            for (key, _, _), run in runs.items():
                start = time.perf_counter()
                run()  # warm up; compiled configurations compile here
                if key.endswith("compiled"):
                    out["compile_s"][key] = out["compile_s"].get(key, 0.0) + time.perf_counter() - start
            for _ in range(spec["repeats"]):
                for key, run in runs.items():
                    times[key].append(median_time(run, warmup=0, repeats=1))
        for key in models:
            for name, p in prompts.items():
                whole, prefill = (sorted(times[key, name, n])[len(times[key, name, n]) // 2] for n in (NEW_TOKENS, 1))
                out["runs"].setdefault(key, {})[name] = {
                    "tokens_per_s": len(p) * NEW_TOKENS / whole, "prefill_ms": 1e3 * prefill,
                    "decode_tokens_per_s": len(p) * (NEW_TOKENS - 1) / max(whole - prefill, 1e-9)}
    return out


def report(gen: dict, title: str) -> dict:
    """Print the tables and the issue's ratios; return the ratios (formers / Hugging Face fp32)."""
    runs, bw = gen["runs"], gen["bandwidth_gbs"]
    print(f"\n| generate {title}: tokens/s (prefill ms, decode tokens/s) | batch 1 | batch 8 |\n|---|---|---|")
    for key, r in runs.items():
        print(f"| {key} | " + " | ".join(f"{r[b]['tokens_per_s']:,.1f} ({r[b]['prefill_ms']:,.0f} ms, "
                                         f"{r[b]['decode_tokens_per_s']:,.1f})" for b in ("batch1", "batch8")) + " |")
    ratios = {}
    print(f"\n| {title}: formers / {REFERENCE} | batch 1 whole | batch 1 decode | batch 8 whole | batch 8 decode |"
          "\n|---|---|---|---|---|")
    for key in (k for k in runs if k.startswith("formers")):
        row = {f"{b}/{part}": runs[key][b][field] / runs[REFERENCE][b][field]
               for b in ("batch1", "batch8") for part, field in (("whole", "tokens_per_s"),
                                                                  ("decode", "decode_tokens_per_s"))}
        ratios[key] = row
        print(f"| {key} | " + " | ".join(f"{v:.2f}x" for v in row.values()) + " |")
    print(f"\nbandwidth-bound ceiling at {bw:.1f} GB/s (a matrix-vector product over 512 MiB, measured in the run):")
    print("| weights | MB read per step | batch 1 ceiling, tokens/s | batch 1 decode, of ceiling | "
          "batch 8 decode, of ceiling |\n|---|---|---|---|---|")
    for key, mb in gen["weight_mb"].items():
        ceiling = 1e3 * bw / mb
        print(f"| {key} | {mb:,.1f} | {ceiling:,.0f} | {runs[key]['batch1']['decode_tokens_per_s'] / ceiling:.0%} | "
              f"{runs[key]['batch8']['decode_tokens_per_s'] / (8 * ceiling):.0%} |")
    for key, seconds in gen.get("compile_s", {}).items():
        print(f"{key}: its warm-up calls (both batches, {NEW_TOKENS} tokens and 1) compiled in {seconds:.1f} s")
    for key in ("formers int8", "formers int8 compiled", "formers int4", "formers int4 compiled"):
        if key in ratios:
            r = ratios[key]
            print(f"targets ({title}, {key.removeprefix('formers ')}): batch 1 {r['batch1/whole']:.2f}x "
                  f"({'met' if r['batch1/whole'] >= 2.5 else 'missed'}, >= 2.5x); batch 8 {r['batch8/whole']:.2f}x "
                  f"({'met' if r['batch8/whole'] >= 1.5 else 'missed'}, >= 1.5x)")
    return ratios
