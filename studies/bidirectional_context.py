"""Claim: a bidirectional encoder uses context on both sides; a left-to-right decoder cannot see the right.

Task (a cloze whose answer sits on one side): a palindrome of 2m digits with one digit
blanked out; fill the blank. The answer is the blank's mirror image, to its right when the
blank is in the first half and to its left in the second half. Models of equal size, all
trained by the same objective (labels at the blank only) and seed:

    decoder   GPT (causal)                       sees only the left
    encoder   the same GPT with causal=False     identical weights and count; only the mask differs
    BERT      formers' BERT (post-norm, MLM head) a BERT-style encoder of nearly the same size

Held-out accuracy by blank position. Expected: the decoder is at chance (10%) in the first
half and perfect in the second; both encoders are perfect everywhere.

    .venv/bin/python -m studies.bidirectional_context --out runs/studies/bidirectional    # ~1 min on 2 cores
    .venv/bin/python -m studies.bidirectional_context --quick --out /tmp/bidirectional   # ~10 s
"""

from __future__ import annotations

import dataclasses
import random

import torch

from formers.models import GPT, Bert, BertConfig, GPTConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM
from formers.optim import ScheduleConfig
from studies.common import accuracy, fit, pyplot, save, study_args, task_source, token_batch

NAME = "bidirectional_context"
BLANK = 10  # digits are ids 0-9


@dataclasses.dataclass
class Setting:
    half: int = 6  # the palindrome has 2 * half digits
    models: tuple[str, ...] = ("decoder", "encoder", "BERT")
    d_model: int = 64
    n_layers: int = 2
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    n_val: int = 200  # per blank position
    seed: int = 0


QUICK = Setting(half=4, models=("decoder", "encoder"), steps=120, n_val=50)


def row(rng: random.Random, s: Setting, blank: int | None = None) -> tuple[list[int], list[int]]:
    first = [rng.randrange(10) for _ in range(s.half)]
    digits = first + first[::-1]
    blank = rng.randrange(len(digits)) if blank is None else blank
    labels = [IGNORE_INDEX] * len(digits)
    labels[blank] = digits[blank]
    digits[blank] = BLANK
    return digits, labels


def make(name: str, s: Setting) -> torch.nn.Module:
    torch.manual_seed(s.seed)
    shared = dict(vocab_size=11, d_model=s.d_model, n_heads=4, n_layers=s.n_layers, max_seq_len=2 * s.half,
                  dropout=0.0, init_std=0.1)
    if name == "BERT":
        return Bert(BertConfig(**shared))
    return GPT(GPTConfig(**shared, causal=name == "decoder"))


def run(name: str, s: Setting) -> dict:
    model = make(name, s)
    source = task_source(lambda rng: token_batch([row(rng, s) for _ in range(s.batch_size)]), s.seed)
    fit(model, CausalLM(), source, steps=s.steps, lr=s.lr, batch_size=s.batch_size,
        schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 10), seed=s.seed)
    by_position = {}
    for blank in range(2 * s.half):
        rng = random.Random(f"val:{blank}")
        by_position[blank] = accuracy(model, [token_batch([row(rng, s, blank) for _ in range(s.n_val)])])
    first, second = list(by_position.values())[: s.half], list(by_position.values())[s.half :]
    return {"params": sum(p.numel() for p in model.parameters()), "by_position": by_position,
            "answer_on_the_right": sum(first) / len(first), "answer_on_the_left": sum(second) / len(second)}


def plot(runs: dict[str, dict], s: Setting):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for (name, r), style in zip(runs.items(), ("o-", "s--", "^:"), strict=False):
        ax.plot(list(r["by_position"]), list(r["by_position"].values()), style,
                label=f"{name} ({r['params']:,} parameters)")
    ax.axvline(s.half - 0.5, color="black", lw=1)
    ax.axhline(0.1, color="grey", ls=":", label="chance (0.1)")
    ax.text(s.half / 2 - 0.5, 0.5, "answer to the RIGHT\nof the blank", ha="center", fontsize=9)
    ax.text(1.5 * s.half - 0.5, 0.5, "answer to the LEFT\nof the blank", ha="center", fontsize=9)
    ax.set_xlabel("position of the blank")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(-0.03, 1.05)
    ax.set_title(f"fill the blank in a {2 * s.half}-digit palindrome", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    runs = {name: run(name, s) for name in s.models}
    for name, r in runs.items():
        print(f"{name:8s} {r['params']:,} params: answer on the right {r['answer_on_the_right']:.3f}, "
              f"on the left {r['answer_on_the_left']:.3f}")
    result = {"claim": "an encoder uses right-hand context; a left-to-right decoder is at chance when it must",
              "setting": dataclasses.asdict(s), "runs": runs}
    return save(args.out, NAME, result, plot(runs, s))


if __name__ == "__main__":
    main()
