"""Claim: a sliding window cannot retrieve a value stored beyond its reach; dense attention and global tokens can.

Task (key-value retrieval, read bidirectionally): `?k=_|a:3;k:7;q:1;...` — the model must
write, at the placeholder `_`, the digit stored under key `k` somewhere in the store. The
queried pair sits at a random place, so the value lies 4 to 4 * n_pairs tokens from the
placeholder. Three 2-layer encoders (GPT blocks with causal=False) train with the same
Trainer, data and seed and differ only in their attention kind:

    dense           SDPA: every token sees every token
    window          sliding window of `window`: after 2 layers a token sees 2 * (window - 1) tokens away
    window+global   the same window, with the 4 query tokens `?k=_` global (Longformer's question tokens)

Accuracy is measured per distance on a fixed held-out set. Expected: the window is perfect
within its reach and at chance (10%) beyond it; dense and window+global succeed everywhere.

    .venv/bin/python -m studies.long_range_retrieval --out runs/studies/retrieval           # ~4 min of CPU
    .venv/bin/python -m studies.long_range_retrieval --quick --out /tmp/retrieval          # ~20 s
"""

from __future__ import annotations

import dataclasses
import json
import random
import string
import tempfile
from pathlib import Path

import torch

from formers.data.tasks import SeededBatches, python_rng, sequence_tokenizer
from formers.models import GPT, GPTConfig
from formers.nn.long_attention import LongAttentionConfig
from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM
from formers.optim import OptimizerConfig, ScheduleConfig
from formers.training import Trainer, TrainerConfig
from studies.common import study_args

TOKENIZER = sequence_tokenizer()
QUERY_LEN = 5  # "?k=_|": the first 4 are the global tokens
PLACEHOLDER = 3  # position of "_" (written as ".", the alphabet's filler character)
PAIR_LEN = 4  # "a:3;"


@dataclasses.dataclass
class Setting:
    n_slots: int = 48  # 4-token slots in the store: the value lies 4 to 4 * n_slots tokens from the query
    n_pairs: int = 1  # slots holding a key-value pair, one of them queried (the rest of the store: random letters)
    window: int = 16  # sliding window; reach after n_layers is n_layers * (window - 1)
    n_layers: int = 2
    near_fraction: float = 0.3  # training examples whose value lies within the window's reach (the rest: anywhere)
    d_model: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    eval_per_pair: int = 30  # held-out examples per slot of the queried pair
    seed: int = 0

    @property
    def reach(self) -> int:
        return self.n_layers * (self.window - 1)

    @property
    def n_near_slots(self) -> int:
        """Slots whose value (at distance 4 * slot + 4) the window can reach."""
        return max(1, min(self.n_slots, (self.reach - 4) // PAIR_LEN + 1))


QUICK = Setting(n_slots=12, window=8, near_fraction=0.5, steps=100, eval_per_pair=20)


def example(rng: random.Random, s: Setting, slot: int | None = None) -> tuple[list[int], int, int]:
    """(token ids, label id, distance from the placeholder to the value).

    The store has `n_slots` slots of 4 tokens; `n_pairs` of them hold "k:v;" (one is the queried
    key, at `slot` or a random slot), the rest random letters: distractors that are never digits.
    """
    if slot is None:
        near = rng.random() < s.near_fraction
        slot = rng.randrange(s.n_near_slots if near else s.n_slots)
    others = rng.sample([i for i in range(s.n_slots) if i != slot], s.n_pairs - 1)
    keys = rng.sample(string.ascii_lowercase, s.n_pairs)
    values = [rng.choice(string.digits) for _ in keys]
    cells = ["".join(rng.choices(string.ascii_lowercase, k=PAIR_LEN)) for _ in range(s.n_slots)]
    for i, k, v in zip([slot, *others], keys, values, strict=True):
        cells[i] = f"{k}:{v};"
    text = f"?{keys[0]}=.|" + "".join(cells)
    value_position = QUERY_LEN + PAIR_LEN * slot + 2
    return TOKENIZER.encode(text), TOKENIZER.encode(values[0])[0], value_position - PLACEHOLDER


def batch_of(examples: list[tuple[list[int], int, int]]) -> dict[str, torch.Tensor]:
    ids = torch.tensor([e[0] for e in examples])  # (B, T): every example has the same length
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, PLACEHOLDER] = torch.tensor([e[1] for e in examples])  # loss only where the answer goes
    return {"input_ids": ids, "labels": labels}


def kinds(s: Setting) -> dict[str, tuple[str, LongAttentionConfig]]:
    return {
        "dense": ("sdpa", LongAttentionConfig()),
        "window": ("sliding_window", LongAttentionConfig(window=s.window, chunk_size=32)),
        "window+global": ("sliding_window", LongAttentionConfig(window=s.window, n_global=4, chunk_size=32)),
    }


def train(kernel: str, attention: LongAttentionConfig, s: Setting, out: Path) -> GPT:
    seq_len = QUERY_LEN + PAIR_LEN * s.n_slots
    torch.manual_seed(s.seed)
    model = GPT(GPTConfig(
        vocab_size=TOKENIZER.vocab_size, d_model=s.d_model, n_heads=4, n_layers=s.n_layers, max_seq_len=seq_len,
        position="rotary", causal=False, dropout=0.0, kernel=kernel, attention=attention,
    ))
    source = SeededBatches(lambda g: batch_of([example(python_rng(g), s) for _ in range(s.batch_size)]),
                           seed=s.seed)
    config = TrainerConfig(
        max_steps=s.steps, batch_size=s.batch_size, seed=s.seed, eval_every=0, progress=False, tensorboard=False,
        optimizer=OptimizerConfig(lr=s.lr, weight_decay=0.0), schedule=ScheduleConfig(warmup_steps=50),
        grad_clip=1.0, precision="fp32",  # as measured: the same numbers on every CPU
    )
    Trainer(model, CausalLM(), source, config=config, out_dir=out).fit()
    return model


@torch.no_grad()
def accuracy_by_distance(model: GPT, s: Setting) -> dict[int, float]:
    model.eval()
    rng = random.Random(f"held-out:{s.seed}")
    out = {}
    for slot in range(s.n_slots):
        examples = [example(rng, s, slot) for _ in range(s.eval_per_pair)]
        batch = batch_of(examples)
        guess = model(batch["input_ids"]).logits[:, PLACEHOLDER].argmax(-1)
        out[examples[0][2]] = (guess == batch["labels"][:, PLACEHOLDER]).float().mean().item()
    return out


def summarise(curves: dict[str, dict[int, float]], reach: int) -> dict[str, dict[str, float]]:
    """Mean accuracy within the window's reach and beyond it, per kind."""
    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    return {kind: {"within_reach": mean([a for d, a in c.items() if d <= reach]),
                   "beyond_reach": mean([a for d, a in c.items() if d > reach])} for kind, c in curves.items()}


def plot(curves: dict[str, dict[int, float]], s: Setting, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (kind, curve), marker in zip(curves.items(), "o^s", strict=False):
        ax.plot(list(curve), list(curve.values()), marker=marker, markersize=4, label=kind, alpha=0.85)
    ax.axvline(s.reach, color="grey", linestyle="--", label=f"window reach {s.n_layers} x ({s.window} - 1)")
    ax.axhline(0.1, color="grey", linestyle=":", label="chance (1 in 10)")
    ax.set_xlabel("distance from the query to the stored value (tokens)")
    ax.set_ylabel("retrieval accuracy (held out)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("long-range retrieval: sliding window vs dense vs global tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, "long_range_retrieval")
    s = QUICK if args.quick else Setting()
    curves = {}
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer's checkpoints: not part of the result
        for name, (kernel, attention) in kinds(s).items():
            model = train(kernel, attention, s, Path(scratch) / name.replace("+", "_"))
            curves[name] = accuracy_by_distance(model, s)
    result = {"claim": "a sliding window fails beyond its reach; dense attention and global tokens succeed",
              "setting": dataclasses.asdict(s), "reach": s.reach, "summary": summarise(curves, s.reach),
              "accuracy_by_distance": curves}
    (args.out / "long_range_retrieval.json").write_text(json.dumps(result, indent=1))
    plot(curves, s, args.out / "long_range_retrieval.png")
    for kind, row in result["summary"].items():
        print(f"{kind:14s} within reach {row['within_reach']:.2f}   beyond reach {row['beyond_reach']:.2f}")
    return result


if __name__ == "__main__":
    main()
