"""Sentence embeddings in one call: `formers.embed(model, tokenizer, texts)`, as sentence-transformers' `encode`.

Texts are tokenized with the tokenizer's own special tokens ([CLS] ... [SEP] for a BERT),
cut to the model's limit (the tokenizer's `max_length`, which a sentence-transformers folder
sets from its max_seq_length, and never past the model's learned positions), run through the
trunk without any pretraining head, pooled over real tokens (mean, as sentence-transformers'
all-MiniLM-L6-v2; or the [CLS] state) and L2-normalised (Reimers & Gurevych 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import check
from formers.data.tokenizers import Tokenizer
from formers.models.heads import POOLING, Pooling, hidden_states_of
from formers.nn.embeddings import position_limit


def embedding_limit(model: nn.Module, tokenizer: Tokenizer) -> int | None:
    """Tokens per text `embed` keeps: the tokenizer's max_length, capped by the model's learned positions."""
    limits = [n for n in (tokenizer.max_length, position_limit(model)) if n is not None]
    return min(limits, default=None)


@torch.inference_mode()
def embed(
    model: nn.Module,
    tokenizer: Tokenizer,
    texts: str | Sequence[str],
    *,
    pooling: Pooling = "mean",
    normalize: bool = True,
    batch_size: int = 32,
    max_length: int | None = None,
) -> torch.Tensor:
    """texts -> embeddings (N, D) float32 on the model's device (one text: (D,)), in the order given.

    `max_length` overrides the limit (default: `embedding_limit`); longer texts are cut, keeping
    their closing special token, as sentence-transformers does. Texts are batched by length, so a
    batch holds little padding; the model is put in eval mode for the call and restored after.
    """
    check(pooling in POOLING, "embed.pooling", pooling, f"one of {sorted(POOLING)}")
    check(batch_size >= 1, "embed.batch_size", batch_size, "a positive int")
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    limit = max_length if max_length is not None else embedding_limit(model, tokenizer)
    hidden_states, pool = hidden_states_of(model), POOLING[pooling]
    device = next(model.parameters()).device
    # Longest first, so each batch pads to lengths close to its own (sentence-transformers sorts too).
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out: list[torch.Tensor | None] = [None] * len(texts)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            batch = tokenizer.encode_batch([texts[i] for i in chosen], truncation=limit)
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            vectors = pool(hidden_states(ids, mask), mask).float()  # (b, D)
            if normalize:
                vectors = F.normalize(vectors, dim=-1)
            for i, vector in zip(chosen, vectors, strict=True):
                out[i] = vector
    finally:
        model.train(was_training)
    if single:
        return out[0]
    d = model.config.d_model
    return torch.stack(out) if out else torch.zeros((0, d), device=device)
