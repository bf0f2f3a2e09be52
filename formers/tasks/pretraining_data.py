"""What the pretraining tasks share: a corpus tokenizer with extra special tokens, random
windows of the token stream, fixed validation batches and the unigram baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from formers.data import Tokenizer
from formers.data.tasks import SeededBatches
from formers.objectives import IGNORE_INDEX
from formers.tasks.base import Recipe
from formers.tasks.language_modeling import encode_corpus

VAL_SEED_OFFSET = 10_007  # validation batches come from a seed the training source never uses


def corpus_with_specials(recipe: Recipe, specials: Sequence[str]) -> tuple[Tokenizer, torch.Tensor, torch.Tensor]:
    """Train the recipe's tokenizer on the corpus, then append `specials` at the top of its vocabulary.

    Appending keeps every text token's id; T5's sentinels rely on landing at the very end.
    """
    tokenizer, train_ids, val_ids = encode_corpus(recipe)
    tokenizer.backend.add_special_tokens(list(specials))
    return tokenizer, train_ids, val_ids


def ids_of(tokenizer: Tokenizer, tokens: Sequence[str]) -> list[int]:
    return [tokenizer.token_to_id(t) for t in tokens]


def random_windows(stream: torch.Tensor, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """`n` windows of `length` tokens at uniformly random offsets of `stream` -> (n, length)."""
    starts = torch.randint(len(stream) - length + 1, (n,), generator=generator)  # (n,)
    return stream[starts[:, None] + torch.arange(length)]  # (n, length)


def fixed_batches(make_batch: Callable[[torch.Generator], dict], seed: int, n: int) -> list[dict]:
    """`n` batches drawn once with a validation seed: the same every evaluation and every run."""
    source = SeededBatches(make_batch, seed + VAL_SEED_OFFSET)
    return [source.next_batch() for _ in range(n)]


def word_start_table(tokenizer: Tokenizer) -> torch.Tensor:
    """(V,) bool: does this token begin a word? Pieces that begin with a letter or digit continue one.

    Byte-level BPE writes a leading space as "Ġ" and a newline as "Ċ", so " parsing" ->
    "Ġpars" + "ing": the first piece starts the word, the second continues it.
    """
    table = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    for i in range(tokenizer.vocab_size):
        piece = tokenizer.backend.id_to_token(i) or ""
        table[i] = not (piece[:1].isalnum())
    return table


def sentence_end_ids(tokenizer: Tokenizer) -> list[int]:
    """Tokens that end a sentence: their text, stripped of spaces and newlines, ends in . ? or !"""
    ends = []
    for i in range(tokenizer.vocab_size):
        piece = tokenizer.decode([i], skip_special_tokens=True).strip()
        if piece.endswith((".", "?", "!")):
            ends.append(i)
    return ends


def unigram_cross_entropy(train_batches: Sequence[dict], val_batches: Sequence[dict], vocab_size: int) -> float:
    """Cross-entropy (nats) of the validation targets under the training targets' unigram distribution.

    The loss a model reaches by knowing only how often each target token occurs (add-one
    smoothed), never looking at the input: the baseline a pretraining loss must beat.
    """
    counts = torch.ones(vocab_size)
    for batch in train_batches:
        labels = batch["labels"][batch["labels"] != IGNORE_INDEX]
        counts += torch.bincount(labels, minlength=vocab_size)[:vocab_size].float()
    log_p = (counts / counts.sum()).log()
    total, n = 0.0, 0
    for batch in val_batches:
        labels = batch["labels"][batch["labels"] != IGNORE_INDEX]
        total -= log_p[labels].sum().item()
        n += labels.numel()
    return total / max(n, 1)


def evaluate(recipe: Recipe, run) -> dict[str, float]:
    """The run's validation metrics, computed as the Trainer computes them (same precision)."""
    from formers.training import Trainer

    trainer = Trainer(run.model, run.objective, None, config=recipe.trainer, out_dir=".", val_batches=run.val_batches)
    return trainer.evaluate()


def baseline_report(recipe: Recipe, run, metric: str, n_train_batches: int = 50) -> str:
    """One line: the unigram baseline against the trained model's validation `metric` (e.g. "val/loss")."""
    train = fixed_batches(run.train_source.make_batch, recipe.trainer.seed + 1, n_train_batches)
    baseline = unigram_cross_entropy(train, run.val_batches, run.model.config.vocab_size)
    achieved = evaluate(recipe, run)[metric]
    return (f"unigram baseline: {baseline:.3f} nats (perplexity {math.exp(baseline):.0f}); "
            f"{metric}: {achieved:.3f} nats (perplexity {math.exp(min(achieved, 50)):.1f}), "
            f"{baseline - achieved:.3f} nats below the baseline")
