"""Our GPT against Hugging Face GPT2LMHeadModel at the same shape, in one process.

Prints training tokens/s (fp32 and bf16 autocast) with the ratio and model FLOPs
utilisation against the matmul peak measured in the same run, and generation tokens/s at
batch 1 against `generate` with its KV cache.

    .venv/bin/python benchmarks/gpt_vs_hf.py            # the issue's small shape
    .venv/bin/python benchmarks/gpt_vs_hf.py --quick    # a smoke run in seconds
"""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from benchmarks.common import gpt_train_flops_per_token, matmul_peak, median_time
from formers import generate
from formers.models import GPT, GPTConfig


def build_pair(layers: int, d: int, heads: int, seq: int, vocab: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(
        n_layer=layers, n_embd=d, n_head=heads, n_positions=seq + 160, vocab_size=vocab,
        attn_implementation="sdpa", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
        eos_token_id=None,
    ))
    ours = GPT(GPTConfig(
        n_layers=layers, d_model=d, n_heads=heads, max_seq_len=seq + 160, vocab_size=vocab, activation="gelu_tanh",
        dropout=0.0,
    ))
    return hf, ours


def train_step_fn(model, ids, precision: str, is_hf: bool):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext

    def step():
        with ctx():
            logits = model(ids[:, :-1]).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_training(hf, ours, batch, seq, vocab, peak, layers, d, repeats):
    ids = torch.randint(0, vocab, (batch, seq + 1))
    n_params = sum(p.numel() for p in ours.parameters())
    flops = gpt_train_flops_per_token(n_params, layers, d, seq)
    for precision in ("fp32", "bf16"):
        rates = {}
        for name, model in (("hf", hf), ("formers", ours)):
            model.train()
            seconds = median_time(train_step_fn(model, ids, precision, name == "hf"), warmup=2, repeats=repeats)
            rates[name] = batch * seq / seconds
        p = peak[precision]
        print(f"train {precision}: HF {rates['hf']:,.0f} tok/s (MFU {rates['hf'] * flops / p:.1%}) | "
              f"formers {rates['formers']:,.0f} tok/s (MFU {rates['formers'] * flops / p:.1%}) | "
              f"ratio {rates['formers'] / rates['hf']:.2f}")


def bench_generation(hf, ours, vocab, new_tokens, repeats):
    prompt = torch.randint(0, vocab, (1, 32))
    hf.eval(), ours.eval()

    def run_hf():
        with torch.no_grad():
            hf.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                        use_cache=True, pad_token_id=0)

    def run_ours():
        generate(ours, prompt, max_new_tokens=new_tokens)

    t_hf = median_time(run_hf, warmup=1, repeats=repeats)
    t_ours = median_time(run_ours, warmup=1, repeats=repeats)
    print(f"generate fp32 batch 1, {new_tokens} new: HF {new_tokens / t_hf:,.1f} tok/s | "
          f"formers {new_tokens / t_ours:,.1f} tok/s | ratio {t_hf / t_ours:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shape, one repeat: a smoke test")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layers, d, heads, seq, vocab, batch = (2, 64, 2, 32, 512, 2) if args.quick else (6, 384, 6, 256, 8192, 8)
    repeats = 1 if args.quick else 5
    peak = {"fp32": matmul_peak(torch.float32, 512 if args.quick else 4096),
            "bf16": matmul_peak(torch.bfloat16, 512 if args.quick else 4096)}
    print(f"shape: {layers} layers, d={d}, {heads} heads, seq {seq}, vocab {vocab}, batch {batch}; "
          f"threads {args.threads}; matmul peak fp32 {peak['fp32'] / 1e9:,.0f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:,.0f} GFLOP/s")
    hf, ours = build_pair(layers, d, heads, seq, vocab)
    bench_training(hf, ours, batch, seq, vocab, peak, layers, d, repeats)
    bench_generation(hf, ours, vocab, 16 if args.quick else 128, repeats=1 if args.quick else 3)


if __name__ == "__main__":
    main()
