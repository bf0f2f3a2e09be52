"""Masked language modelling (Devlin et al. 2019): hide some tokens, predict them from both sides.

`mask_tokens` is the transform (token ids -> masked inputs and labels); `MaskedLM` is the
loss. Of the selected tokens, 80% become [MASK], 10% a random token and 10% stay as they
are, so the model cannot learn that only [MASK] positions matter (BERT section 3.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from formers.config import Config, check
from formers.errors import DataError
from formers.objectives.causal_lm import IGNORE_INDEX, token_cross_entropy


@dataclasses.dataclass(kw_only=True)
class MaskedLMConfig(Config):
    mask_rate: float = 0.15  # fraction of (non-special) tokens selected for prediction
    mask_fraction: float = 0.8  # of the selected: replaced by [MASK]
    random_fraction: float = 0.1  # of the selected: replaced by a random token; the rest stay unchanged
    whole_word: bool = False  # select whole words, never word pieces alone (BERT's later WWM release)
    next_sentence: bool = False  # add next-sentence prediction on segment pairs (see nsp.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.mask_rate < 1.0, "MaskedLMConfig.mask_rate", self.mask_rate, "a value in (0, 1)")
        for name in ("mask_fraction", "random_fraction"):
            check(0.0 <= getattr(self, name) <= 1.0, f"MaskedLMConfig.{name}", getattr(self, name), "a value in [0, 1]")
        total = self.mask_fraction + self.random_fraction
        check(total <= 1.0, "MaskedLMConfig.random_fraction", self.random_fraction,
              f"at most 1 - mask_fraction = {1 - self.mask_fraction:g}")


def word_ids_from_starts(word_starts: torch.Tensor) -> torch.Tensor:
    """word_starts (B, T) bool, True where a word begins -> word index of every token (B, T).

    Tokens before a row's first start form word 0 of that row, so no token is left out.
    """
    return word_starts.long().cumsum(dim=-1)


def word_starts_from_word_ids(word_ids: Sequence[int | None]) -> torch.Tensor:
    """A tokenizer's per-token word ids (`tokenizers.Encoding.word_ids`, None for specials) -> starts (T,)."""
    starts, previous = [], object()
    for w in word_ids:
        starts.append(w is not None and w != previous)
        previous = w
    return torch.tensor(starts, dtype=torch.bool)


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Sequence[int],
    generator: torch.Generator,
    mask_rate: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
    word_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids (B, T) -> (masked inputs (B, T), labels (B, T): original id where selected, else IGNORE_INDEX).

    Every token is selected independently with probability `mask_rate`; with `word_ids` (B, T)
    (equal ids = one word, see `word_ids_from_starts`) every word is selected or not as a whole.
    Tokens in `special_ids` ([CLS], [SEP], padding) are never selected and never drawn as
    random replacements.
    """
    if input_ids.dim() != 2:
        raise DataError(f"mask_tokens takes input_ids of shape (B, T), got {tuple(input_ids.shape)}")
    special = torch.tensor(sorted(set(special_ids)), dtype=torch.long)
    if mask_id not in set(special_ids):
        raise DataError(f"mask_id={mask_id} must be one of special_ids {sorted(special_ids)} (it is never a target)")
    candidate = ~torch.isin(input_ids, special)  # (B, T)
    if word_ids is None:
        selected = torch.rand(input_ids.shape, generator=generator) < mask_rate
    else:
        if word_ids.shape != input_ids.shape:
            raise DataError(f"word_ids shape {tuple(word_ids.shape)} must equal input_ids {tuple(input_ids.shape)}")
        # One draw per word index; each token reads its word's draw, so a word goes together.
        b, t = input_ids.shape
        per_word = torch.rand((b, t + 1), generator=generator) < mask_rate  # (B, T+1): a row has <= T+1 word ids
        selected = per_word.gather(1, word_ids.clamp(0, t))
    selected &= candidate
    how = torch.rand(input_ids.shape, generator=generator)  # one draw per token decides mask / random / keep
    to_mask = selected & (how < mask_fraction)
    to_random = selected & (how >= mask_fraction) & (how < mask_fraction + random_fraction)
    is_ordinary = torch.ones(vocab_size, dtype=torch.bool)
    is_ordinary[special[special < vocab_size]] = False
    ordinary = is_ordinary.nonzero().squeeze(1)  # (V_ordinary,)
    random_ids = ordinary[torch.randint(len(ordinary), input_ids.shape, generator=generator)]
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return inputs, labels


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Cross-entropy over the selected positions only (labels != IGNORE_INDEX), plus their accuracy."""
    return token_cross_entropy(logits, labels)


class MaskedLM:
    """batch {"input_ids" (masked), "labels", optional "attention_mask", "token_type_ids"} -> MLM loss."""

    def __init__(self, config: MaskedLMConfig | None = None) -> None:
        self.config = config or MaskedLMConfig()

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        out = model(batch["input_ids"], attention_mask=batch.get("attention_mask"),
                    token_type_ids=batch.get("token_type_ids"))
        return masked_lm_loss(out.logits, batch["labels"])
