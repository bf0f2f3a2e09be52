"""Batches for adaptation: labelled texts, text pairs and masked in-domain text, all seeded and resumable.

Texts arrive already tokenized (lists of ids, [CLS] ... [SEP] for a BERT), so the same sources
serve a WordPiece MiniLM and a character-level toy model. Each source is a `SeededBatches`: the
batch at step n is fixed by (seed, n), and its resume state is the step counter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from formers.data.batches import padded
from formers.data.tasks import SeededBatches
from formers.errors import DataError
from formers.objectives import mask_tokens


def _check(sequences: Sequence, batch_size: int, what: str) -> None:
    if not sequences:
        raise DataError(f"{what} got no sequences; give at least one tokenized text")
    if batch_size < 1:
        raise DataError(f"{what}: batch_size={batch_size} must be at least 1")


def labelled_batches(sequences: Sequence[Sequence[int]], labels: Sequence, *, batch_size: int, seed: int,
                     pad_id: int = 0) -> SeededBatches:
    """Random batches of (text, label): {"input_ids", "attention_mask", "labels" (B,)} for the sequence heads."""
    _check(sequences, batch_size, "labelled_batches")
    if len(labels) != len(sequences):
        raise DataError(f"labelled_batches got {len(sequences)} texts but {len(labels)} labels")
    label_tensor = torch.as_tensor(labels)

    def make(g: torch.Generator) -> dict:
        idx = torch.randint(len(sequences), (batch_size,), generator=g)
        return {**padded([sequences[i] for i in idx], pad_id), "labels": label_tensor[idx]}

    return SeededBatches(make, seed)


def fixed_batches(sequences: Sequence[Sequence[int]], labels: Sequence | None = None, *, batch_size: int,
                  pad_id: int = 0) -> list[dict]:
    """Every text once, in order, in batches (evaluation); with labels when given."""
    out = []
    for start in range(0, len(sequences), batch_size):
        batch = padded(sequences[start:start + batch_size], pad_id)
        if labels is not None:
            batch["labels"] = torch.as_tensor(labels[start:start + batch_size])
        out.append(batch)
    return out


def pair_batches(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, batch_size: int, seed: int,
                 pad_id: int = 0) -> SeededBatches:
    """Random batches of distinct (text, its pair) for `PairContrastive`: the other rows are the negatives."""
    _check(pairs, batch_size, "pair_batches")
    if batch_size > len(pairs):
        raise DataError(f"pair_batches: batch_size={batch_size} exceeds the {len(pairs)} pairs (rows must differ)")

    def make(g: torch.Generator) -> dict:
        idx = torch.randperm(len(pairs), generator=g)[:batch_size]
        return {**padded([pairs[i][0] for i in idx], pad_id),
                **padded([pairs[i][1] for i in idx], pad_id, prefix="pair_")}

    return SeededBatches(make, seed)


def masked_text_batches(sequences: Sequence[Sequence[int]], *, batch_size: int, seed: int, mask_id: int,
                        vocab_size: int, special_ids: Sequence[int], pad_id: int = 0,
                        mask_rate: float = 0.15) -> SeededBatches:
    """Masked-LM batches of in-domain texts (BERT's 80/10/10 masking) for continued pretraining."""
    _check(sequences, batch_size, "masked_text_batches")

    def make(g: torch.Generator) -> dict:
        idx = torch.randint(len(sequences), (batch_size,), generator=g)
        batch = padded([sequences[i] for i in idx], pad_id)
        inputs, labels = mask_tokens(batch["input_ids"], mask_id=mask_id, vocab_size=vocab_size,
                                     special_ids=[*special_ids, pad_id, mask_id], generator=g, mask_rate=mask_rate)
        return {**batch, "input_ids": inputs, "labels": labels}

    return SeededBatches(make, seed)
