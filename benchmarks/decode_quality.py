"""What int8, int4 (and bf16) weights cost in quality: perplexity and greedy agreement with fp32 decoding.

Three models: the default recipe's trained checkpoint (validation perplexity on the recipe's own held-out
text, in windows of its context length, and greedy agreement over 100 prompts cut from that text), and
GPT-2-shaped and small-shaped random weights (benchmarks/shapes.py; no pretrained GPT-2 can be had
offline): their perplexity over random tokens is near the vocabulary size and only shows that int8 moves
it little, and their near-flat logits make greedy agreement a harsh test, since any near-tie flips.
Measures: formers/evaluate/decoding.py. Everything runs in fp32 activations apart from the weights.

    .venv/bin/python -m benchmarks.decode_quality --checkpoint runs/gpt-pydocs-char
    .venv/bin/python -m benchmarks.decode_quality --shapes small     # without a checkpoint
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from benchmarks.common import machine, machine_line
from benchmarks.shapes import SHAPES, build

WEIGHTS = ("int8", "int4", "bf16")


def copies(make) -> dict[str, torch.nn.Module]:
    """fp32 and each weight format of the same model (`make` builds a fresh fp32 one)."""
    from formers import quantize_weights

    return {"fp32": make().eval(), **{w: quantize_weights(make().eval(), w) for w in WEIGHTS}}


def compare(models: dict, windows: torch.Tensor, prompts: torch.Tensor, new_tokens: int) -> dict:
    from formers.evaluate import greedy_agreement, perplexity

    out = {w: {"perplexity": perplexity(m, windows)} for w, m in models.items()}
    for w in WEIGHTS:
        out[w].update(greedy_agreement(models["fp32"], models[w], prompts, new_tokens))
    return out


def checkpoint_case(folder: str, n_prompts: int) -> dict:
    from formers import load, load_tokenizer
    from formers.storage import read_json, resolve_checkpoint
    from formers.tasks import Recipe
    from formers.tasks.language_modeling import corpus_split

    path = resolve_checkpoint(folder)
    recipe = Recipe.from_dict(read_json(path / "extra.json")["recipe"])
    _, val = corpus_split(recipe)  # the held-out text the recipe validates on
    ids = torch.tensor(load_tokenizer(path).encode(val, add_special_tokens=False))
    t = recipe.data.seq_len + 1  # windows of the context length, plus the last token's target
    windows = ids[: len(ids) // t * t].view(-1, t)
    starts = torch.linspace(0, len(ids) - 97, n_prompts).long()
    prompts = torch.stack([ids[s:s + 32] for s in starts.tolist()])  # (N, 32), 64 new tokens fit in 128
    return compare(copies(lambda: load(path)), windows, prompts, new_tokens=64)


def shape_case(name: str, n_prompts: int) -> dict:
    s, g = SHAPES[name], torch.Generator().manual_seed(0)
    windows = torch.randint(0, s.vocab, (32, 129), generator=g)
    prompts = torch.randint(0, s.vocab, (n_prompts, 16), generator=g)
    return compare(copies(lambda: build("formers", s)), windows, prompts, new_tokens=32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=str, default=None, help="a run of recipes/gpt-pydocs-char.yaml")
    parser.add_argument("--shapes", nargs="*", choices=sorted(SHAPES), default=["small", "gpt2"])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(machine()), flush=True)
    cases = {}
    if args.checkpoint:
        cases[f"checkpoint {args.checkpoint}"] = checkpoint_case(args.checkpoint, args.prompts)
    cases.update({f"random weights, shape {name}": shape_case(name, args.prompts) for name in args.shapes})
    print(f"\n| model | weights | perplexity | vs fp32 | greedy agreement, tokens | identical continuations "
          f"({args.prompts} prompts) |\n|---|---|---|---|---|---|")
    for case, r in cases.items():
        for w, m in r.items():
            change = f"{m['perplexity'] / r['fp32']['perplexity'] - 1:+.3%}" if w != "fp32" else ""
            agree = f"{m['token']:.1%} | {m['identical']:.0%}" if w != "fp32" else "(reference) | "
            print(f"| {case} | {w} | {m['perplexity']:,.4f} | {change} | {agree} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(cases, f, indent=2)


if __name__ == "__main__":
    main()
