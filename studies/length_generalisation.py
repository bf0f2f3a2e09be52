"""Claim: relative position schemes (ALiBi, T5 bias) keep working on inputs longer than training; absolute ones do not.

Five character-level GPTs, identical but for their position scheme (sinusoidal, learned,
rotary, ALiBi, T5 bias), train with the same Trainer, data (Python's own documentation,
`pydoc_data`) and seed on windows of `train_len` tokens, then are evaluated on held-out
text in windows of 1, 2, 4 and 8 times that length (256 -> 512, 1024, 2048 at full size).
Each length scores the same held-out tokens (non-overlapping windows, every token predicted
from the window's earlier tokens), so the numbers are comparable across lengths.

Learned positions have no vector past `max_seq_len = train_len`: the model raises
SequenceTooLongError, recorded here as "refused", never wrapped or truncated. Expected
(Press et al. 2022, ALiBi): ALiBi's and T5's loss stays flat or falls with length; rotary
degrades; sinusoidal degrades most.

    .venv/bin/python -m studies.length_generalisation --out runs/studies/length           # ~5 min of CPU
    .venv/bin/python -m studies.length_generalisation --quick --out /tmp/length          # ~20 s
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import torch

from formers.data.batches import TokenWindows, eval_windows
from formers.data.corpora import load_corpus, split_text
from formers.data.tokenizers import TokenizerConfig, train_tokenizer
from formers.errors import SequenceTooLongError
from formers.models import GPT, GPTConfig
from formers.objectives.causal_lm import CausalLM
from formers.optim import OptimizerConfig, ScheduleConfig
from formers.training import Trainer, TrainerConfig
from studies.common import study_args

POSITIONS = ["sinusoidal", "learned", "rotary", "alibi", "t5"]
REFUSED = "refused"


@dataclasses.dataclass
class Setting:
    train_len: int = 256
    factors: tuple[int, ...] = (1, 2, 4, 8)  # evaluation lengths, as multiples of train_len
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    steps: int = 600
    batch_size: int = 8
    lr: float = 2e-3
    eval_tokens: int = 16384  # held-out tokens scored at every length
    seed: int = 0


QUICK = Setting(train_len=32, d_model=48, n_layers=2, steps=200, lr=4e-3, batch_size=8, eval_tokens=4096)


def data(s: Setting):
    train_text, val_text = split_text(load_corpus("pydocs"), 0.1)
    tokenizer = train_tokenizer(TokenizerConfig(kind="char"), train_text)
    encode = lambda text: torch.tensor(tokenizer.encode(text), dtype=torch.long)  # noqa: E731
    return tokenizer, encode(train_text), encode(val_text)[: s.eval_tokens + 1]


def train(position: str, s: Setting, tokenizer, train_ids: torch.Tensor, out: Path) -> GPT:
    torch.manual_seed(s.seed)
    model = GPT(GPTConfig(
        vocab_size=tokenizer.vocab_size, d_model=s.d_model, n_heads=s.n_heads, n_layers=s.n_layers,
        max_seq_len=s.train_len, position=position, dropout=0.0,
    ))
    source = TokenWindows(train_ids, seq_len=s.train_len, batch_size=s.batch_size, seed=s.seed)
    config = TrainerConfig(
        max_steps=s.steps, batch_size=s.batch_size, seed=s.seed, eval_every=0, progress=False, tensorboard=False,
        optimizer=OptimizerConfig(lr=s.lr), schedule=ScheduleConfig(warmup_steps=s.steps // 10),
        precision="fp32",  # as measured: the same numbers on every CPU
    )
    Trainer(model, CausalLM(), source, config=config, out_dir=out, tokenizer=tokenizer).fit()
    return model


@torch.no_grad()
def loss_at(model: GPT, val_ids: torch.Tensor, length: int) -> float | str:
    """Mean next-token loss over the held-out tokens in windows of `length`, or "refused"."""
    model.eval()
    objective, total, count = CausalLM(), 0.0, 0
    for batch in eval_windows(val_ids, seq_len=length, batch_size=max(1, 8192 // length)):
        try:
            loss = objective(model, batch)["loss"]
        except SequenceTooLongError:
            return REFUSED
        n = batch["labels"].numel()
        total, count = total + float(loss) * n, count + n
    return total / count


def plot(curves: dict[str, dict[int, float | str]], s: Setting, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    refusals = []
    for position, curve in curves.items():
        ok = {t: v for t, v in curve.items() if v != REFUSED}
        line = ax.plot(list(ok), list(ok.values()), marker="o", label=position)
        refusals += [(t, line[0].get_color(), position) for t, v in curve.items() if v == REFUSED]
    top = ax.get_ylim()[1]
    for t, color, _ in refusals:  # refused lengths: a cross along the top edge, named once
        ax.plot([t], [top], "x", color=color, markersize=10, clip_on=False)
    if refusals:
        ax.annotate(f"{refusals[0][2]}: refused (SequenceTooLongError)", (refusals[0][0], top),
                    textcoords="offset points", xytext=(0, -14), fontsize=8, color=refusals[0][1])
    ax.axvline(s.train_len, color="grey", linestyle="--", label=f"training length {s.train_len}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("evaluation length (tokens)")
    ax.set_ylabel("held-out loss (nats / char)")
    ax.set_title("length generalisation by position scheme (x = refused)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = study_args(__doc__, argv, "length_generalisation")
    s = QUICK if args.quick else Setting()
    tokenizer, train_ids, val_ids = data(s)
    curves: dict[str, dict[int, float | str]] = {}
    with tempfile.TemporaryDirectory() as scratch:  # the Trainer's checkpoints: not part of the result
        for position in POSITIONS:
            model = train(position, s, tokenizer, train_ids, Path(scratch) / position)
            curves[position] = {s.train_len * f: loss_at(model, val_ids, s.train_len * f) for f in s.factors}
    longest = s.train_len * s.factors[-1]
    ratio = {p: (c[longest] / c[s.train_len] if c[longest] != REFUSED else REFUSED) for p, c in curves.items()}
    result = {"claim": "relative position schemes generalise to longer inputs; absolute ones do not",
              "setting": dataclasses.asdict(s), "loss": curves, "loss_ratio_longest_to_trained": ratio}
    (args.out / "length_generalisation.json").write_text(json.dumps(result, indent=1))
    plot(curves, s, args.out / "length_generalisation.png")
    for position, curve in curves.items():
        cells = "  ".join(f"{t}: {v:.3f}" if v != REFUSED else f"{t}: {v}" for t, v in curve.items())
        print(f"{position:11s} {cells}")
    return result


if __name__ == "__main__":
    main()
