"""Claim: without position information self-attention is blind to order; any position scheme fixes it.

Without positions, a bidirectional Transformer is permutation-equivariant: permuting the
input permutes the output and leaves a mean-pooled representation unchanged ("cat ate
fish" and "fish ate cat" look the same). We check that on trained models, then train the
same 2-layer encoder (GPT blocks with causal=False) to reverse a string of digits, output at
position i = input at position n-1-i, with each position scheme (`position:` is a config
choice): none, sinusoidal, learned, rotary, T5 relative bias, ALiBi.

An equivariant model sees at position i only its own digit and the bag of all digits, so its
best possible accuracy is the "bag-of-tokens ceiling" computed here exactly, not 100%.

A second panel trains decoders (causal GPTs) on `digits | reversed digits`: there the causal
mask itself tells a token how many tokens precede it, so "no positions" is not order-blind
(Haviv et al. 2022), and ALiBi, made for decoders, gets direction from the mask.

    .venv/bin/python -m studies.positional_encoding --out runs/studies/positional_encoding   # ~4 min on 2 cores
    .venv/bin/python -m studies.positional_encoding --quick --out /tmp/positions            # ~10 s
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import torch

from formers.models import GPT, GPTConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM
from formers.optim import ScheduleConfig
from studies.common import accuracy, fit, pyplot, save, study_args, task_source, token_batch

NAME = "positional_encoding"
SCHEMES = ("none", "sinusoidal", "learned", "rotary", "t5", "alibi")
SEP = 10  # the separator of the decoder's `digits | reversed` sequences; digits are ids 0-9


@dataclasses.dataclass
class Setting:
    n_digits: int = 8
    schemes: tuple[str, ...] = SCHEMES
    decoder: bool = True  # also train the causal-decoder panel
    d_model: int = 64
    n_layers: int = 2
    steps: int = 1500
    batch_size: int = 32
    lr: float = 3e-3
    init_std: float = 0.1  # GPT-2's 0.02 leaves token embeddings tiny next to unit-size sinusoids: slow to start
    n_val: int = 512
    seed: int = 0


QUICK = Setting(n_digits=6, schemes=("none", "sinusoidal"), decoder=False, steps=150, n_val=256)


def encoder_row(rng: random.Random, n: int) -> tuple[list[int], list[int]]:
    digits = [rng.randrange(10) for _ in range(n)]
    return digits, digits[::-1]


def decoder_row(rng: random.Random, n: int) -> tuple[list[int], list[int]]:
    """`d_1..d_n | d_n..d_1`: position n + j (the separator, then the answer so far) predicts answer digit j."""
    digits = [rng.randrange(10) for _ in range(n)]
    answer = digits[::-1]
    return digits + [SEP] + answer, [IGNORE_INDEX] * n + answer + [IGNORE_INDEX]


def bag_ceiling(rows: list[tuple[list[int], list[int]]]) -> float:
    """Best expected accuracy of any permutation-equivariant model on encoder reversal.

    At position i it knows x_i and the multiset of the row; the target is one of the other
    n - 1 digits, each equally likely, so the best guess is the most frequent of them.
    """
    total = 0.0
    for digits, _ in rows:
        for x in digits:
            others = Counter(digits)
            others[x] -= 1
            total += max(others.values()) / (len(digits) - 1)
    return total / sum(len(d) for d, _ in rows)


def train(position: str, causal: bool, s: Setting) -> tuple[GPT, float]:
    make_row = decoder_row if causal else encoder_row
    val_rows = [make_row(random.Random(f"val:{s.seed}:{i}"), s.n_digits) for i in range(s.n_val)]
    torch.manual_seed(s.seed)
    model = GPT(GPTConfig(
        vocab_size=11, d_model=s.d_model, n_heads=4, n_layers=s.n_layers, max_seq_len=len(val_rows[0][0]),
        position=position, causal=causal, dropout=0.0, init_std=s.init_std,
    ))
    source = task_source(lambda rng: token_batch([make_row(rng, s.n_digits) for _ in range(s.batch_size)]), s.seed)
    fit(model, CausalLM(), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
        schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 10), seed=s.seed)
    return model, accuracy(model, [token_batch(val_rows)])


@torch.no_grad()
def equivariance(model: GPT, s: Setting) -> dict[str, float]:
    """|f(P x) - P f(x)| (max over a batch) and the change of the mean-pooled representation under P."""
    model.eval()
    g = torch.Generator().manual_seed(s.seed)
    x = torch.randint(0, 10, (64, s.n_digits), generator=g)  # (B, T)
    perm = torch.randperm(s.n_digits, generator=g)
    h, h_perm = model(x).last_hidden_state, model(x[:, perm]).last_hidden_state  # (B, T, D) each
    return {"permuted_output_gap": (h_perm - h[:, perm]).abs().max().item(),
            "pooled_gap": (h_perm.mean(1) - h.mean(1)).abs().max().item(),
            "output_scale": h.abs().mean().item()}


def plot(result: dict, s: Setting):
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    xs = range(len(s.schemes))
    width = 0.38 if s.decoder else 0.7
    encoder = [result["accuracy"]["encoder"][p] for p in s.schemes]
    ax.bar([x - (width / 2 if s.decoder else 0) for x in xs], encoder, width, label="encoder (bidirectional)")
    if s.decoder:
        decoder = [result["accuracy"]["decoder"][p] for p in s.schemes]
        ax.bar([x + width / 2 for x in xs], decoder, width, label="decoder (causal)")
    ax.axhline(result["bag_ceiling"], color="black", ls="--", lw=1,
               label=f"best order-blind model ({result['bag_ceiling']:.2f})")
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance (0.1)")
    ax.set_xticks(list(xs), s.schemes)
    ax.set_ylabel("held-out accuracy per digit")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"reverse {s.n_digits} digits: accuracy by position scheme", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    gaps = result["equivariance"]
    names = list(gaps)
    bx.bar([f"{n}\nf(Px) vs Pf(x)" for n in names], [max(gaps[n]["permuted_output_gap"], 1e-9) for n in names])
    bx.set_yscale("log")
    bx.set_ylabel("max |difference| (hidden state)")
    bx.set_title("permute the input (trained encoders)", fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    acc: dict[str, dict[str, float]] = {"encoder": {}, "decoder": {}}
    gaps = {}
    for position in s.schemes:
        model, acc["encoder"][position] = train(position, False, s)
        if position in ("none", "sinusoidal"):
            gaps[position] = equivariance(model, s)
        if s.decoder:
            acc["decoder"][position] = train(position, True, s)[1]
        print(f"{position:10s} encoder {acc['encoder'][position]:.3f}   decoder {acc['decoder'].get(position, '-')}")
    rows = [encoder_row(random.Random(f"val:{s.seed}:{i}"), s.n_digits) for i in range(s.n_val)]
    result = {"claim": "no positions: order-blind (permutation-equivariant) and fails at reversal; "
                       "every position scheme can reverse",
              "setting": dataclasses.asdict(s), "accuracy": acc, "bag_ceiling": bag_ceiling(rows),
              "equivariance": gaps}
    print(f"bag-of-tokens ceiling {result['bag_ceiling']:.3f}; equivariance {gaps}")
    return save(args.out, NAME, result, plot(result, s))


if __name__ == "__main__":
    main()
