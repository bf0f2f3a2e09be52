"""Prefix LM (Raffel et al. 2020, section 3.2.1; Liu et al. 2018): a decoder-only model that reads a
prefix with full (bidirectional) attention and predicts only the continuation.

`prefix_lm_split` picks each row's prefix length; `PrefixLM` builds the mask with
`formers.nn.masks.prefix_lm_mask` and scores the suffix only. The model must accept a full
boolean `mask` (B, 1, T, T) and apply no causal rule of its own (GPT with `causal=False`).
"""

from __future__ import annotations

import torch
from torch import nn

from formers.errors import DataError
from formers.nn.masks import combine, padding_mask, prefix_lm_mask
from formers.objectives.causal_lm import IGNORE_INDEX, token_cross_entropy


def prefix_lm_split(
    windows: torch.Tensor, generator: torch.Generator, min_prefix: int = 1, min_suffix: int = 1
) -> dict[str, torch.Tensor]:
    """windows (B, T+1) -> {"input_ids" (B, T), "labels" (B, T), "prefix_lengths" (B,)}.

    The prefix length P is uniform in [min_prefix, T + 1 - min_suffix]. Label i is token
    i + 1; it counts only when token i + 1 lies in the suffix (i + 1 >= P).
    """
    b, t_plus_1 = windows.shape
    t = t_plus_1 - 1
    if not 1 <= min_prefix <= t + 1 - min_suffix or min_suffix < 1:
        raise DataError(f"windows of {t_plus_1} tokens cannot hold a prefix of >= {min_prefix} "
                        f"and a suffix of >= {min_suffix} tokens")
    prefix_lengths = torch.randint(min_prefix, t + 2 - min_suffix, (b,), generator=generator)  # (B,)
    labels = windows[:, 1:].clone()
    in_prefix = torch.arange(1, t + 1)[None, :] < prefix_lengths[:, None]  # (B, T): target token i+1 is prefix
    labels[in_prefix] = IGNORE_INDEX
    return {"input_ids": windows[:, :-1], "labels": labels, "prefix_lengths": prefix_lengths}


class PrefixLM:
    """batch {"input_ids", "labels", "prefix_lengths", optional "attention_mask"} -> suffix loss."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        input_ids = batch["input_ids"]
        mask = prefix_lm_mask(batch["prefix_lengths"].to(input_ids.device), input_ids.shape[1])  # (B, 1, T, T)
        attention_mask = batch.get("attention_mask")
        mask = combine(mask, padding_mask(attention_mask) if attention_mask is not None else None)
        logits = model(input_ids, mask=mask).logits
        return token_cross_entropy(logits, batch["labels"])
