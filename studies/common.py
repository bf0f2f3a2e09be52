"""What the claim studies share: the command line, training through the one Trainer, data, figures.

Every study is `python -m studies.NAME [--quick] [--out DIR]`: it writes NAME.json (the
numbers) and NAME.png (the figure) into DIR and returns the JSON's content from `main`,
which is what tests/studies/test_claims.py asserts on. Seeds are fixed, so a rerun on the
same machine gives the same numbers.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from formers.data.batches import TokenWindows, eval_windows
from formers.data.corpora import load_corpus, split_text
from formers.data.tasks import SeededBatches, python_rng
from formers.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from formers.objectives.causal_lm import IGNORE_INDEX
from formers.optim import OptimizerConfig, ScheduleConfig
from formers.training import Trainer, TrainerConfig


def study_args(doc: str, argv: Sequence[str] | None, name: str) -> argparse.Namespace:
    """--quick (the reduced run the tests use), --out DIR, --threads N; sets torch's thread count."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced version the tests run (seconds)")
    parser.add_argument("--out", type=Path, default=Path("runs/studies") / name)
    parser.add_argument("--threads", type=int, default=1, help="tiny models run fastest on one thread")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def fit(
    model: nn.Module,
    objective: Callable[[nn.Module, dict], dict],
    source: Any,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    schedule: ScheduleConfig | None = None,
    grad_clip: float | None = 1.0,
    weight_decay: float = 0.0,
    val_batches: Sequence[dict] = (),
    eval_every: int = 0,
    log_every: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Train with the library's Trainer (checkpoints go to a scratch folder); returns `Trainer.fit`'s result."""
    config = TrainerConfig(
        max_steps=steps, batch_size=batch_size, seed=seed, eval_every=eval_every, eval_batches=len(val_batches) or 1,
        log_every=log_every, progress=False, tensorboard=False, grad_clip=grad_clip, keep_last=1,
        precision="fp32",  # the studies' figures were measured in fp32: the same numbers on every CPU
        optimizer=OptimizerConfig(lr=lr, weight_decay=weight_decay),
        schedule=schedule or ScheduleConfig(kind="constant"),
    )
    with tempfile.TemporaryDirectory() as scratch:
        return Trainer(model, objective, source, config=config, out_dir=scratch, val_batches=val_batches).fit()


def curve(history: list[dict], key: str) -> dict[int, float]:
    """{step: value} of one logged metric (e.g. "train/loss", "val/accuracy")."""
    return {r["step"]: r[key] for r in history if key in r}


def task_source(make_batch: Callable[[random.Random], dict], seed: int) -> SeededBatches:
    """A resumable batch source from a function of a seeded `random.Random`."""
    return SeededBatches(lambda g: make_batch(python_rng(g)), seed=seed)


def token_batch(rows: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """(input ids, labels) rows of equal length -> a batch; label IGNORE_INDEX where nothing is asked."""
    ids = torch.tensor([r[0] for r in rows])  # (B, T)
    labels = torch.tensor([r[1] for r in rows])  # (B, T)
    return {"input_ids": ids, "labels": labels}


@torch.no_grad()
def accuracy(model: nn.Module, batches: Sequence[dict]) -> float:
    """Fraction of labelled positions (label != IGNORE_INDEX) whose argmax is the label."""
    model.eval()
    correct = total = 0
    for batch in batches:
        guess = model(batch["input_ids"]).logits.argmax(-1)
        asked = batch["labels"] != IGNORE_INDEX
        correct += int((guess == batch["labels"])[asked].sum())
        total += int(asked.sum())
    return correct / max(total, 1)


@functools.lru_cache(maxsize=1)
def pydocs_chars() -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """Character tokenizer and (train, validation) ids of Python's own documentation (no download)."""
    train_text, val_text = split_text(load_corpus("pydocs"), 0.1)
    tokenizer = train_tokenizer(TokenizerConfig(kind="char"), train_text)
    encode = lambda text: torch.tensor(tokenizer.encode(text), dtype=torch.long)  # noqa: E731
    return tokenizer, encode(train_text), encode(val_text)


def lm_data(seq_len: int, batch_size: int, val_tokens: int, seed: int = 0) -> tuple[Tokenizer, TokenWindows, list]:
    """Training windows and a fixed validation set (`val_tokens` held-out characters) of pydocs."""
    tokenizer, train_ids, val_ids = pydocs_chars()
    source = TokenWindows(train_ids, seq_len=seq_len, batch_size=batch_size, seed=seed)
    val = eval_windows(val_ids[: val_tokens + 1], seq_len=seq_len, batch_size=16)
    return tokenizer, source, val


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(out: Path, name: str, result: dict[str, Any], fig, *, tight: bool = True) -> dict[str, Any]:
    """Write OUT/NAME.json and OUT/NAME.png (small: the committed copies live in studies/figures).
    `tight=False` keeps a figure whose grids were placed by hand (tight_layout cannot fit those)."""
    (out / f"{name}.json").write_text(json.dumps(_plain(result), indent=1) + "\n")
    if tight:
        fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=80)
    pyplot().close(fig)
    return result


def _plain(value: Any) -> Any:
    """JSON-safe copy: floats rounded to 5 significant digits, non-finite ones as strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.5g}") if math.isfinite(value) else str(value)
    return value
