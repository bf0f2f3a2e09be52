"""Supervised fine-tuning: next-token loss on the response tokens of prompt/response pairs.

The prompt is context, not a target (Ouyang et al. 2022 fine-tune on demonstrations the
same way): `collate` labels prompt and padding positions IGNORE_INDEX, so the loss is the
causal LM's cross-entropy (one implementation, `token_cross_entropy`) over response tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from formers.alignment.data import SFT_FIELDS, Example, RecordBatches, collate, encode_records, fixed_batches
from formers.alignment.sequences import forward
from formers.config import Config, check
from formers.objectives.causal_lm import token_cross_entropy


@dataclasses.dataclass(kw_only=True)
class SFTConfig(Config):
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "SFTConfig.label_smoothing", self.label_smoothing, "[0, 1)")


def sft_examples(records: Sequence[Mapping[str, str]], tokenizer, max_seq_len: int) -> list[Example]:
    """{"prompt", "response"} records -> encoded (prompt, response + eos) pairs, validated."""
    return encode_records(records, SFT_FIELDS, tokenizer, max_seq_len)


def sft_batches(examples: Sequence[Example], pad_id: int, *, batch_size: int, seed: int = 0) -> RecordBatches:
    """A resumable training source of SFT batches for the Trainer."""
    return RecordBatches(examples, lambda ex: collate(ex, pad_id), batch_size=batch_size, seed=seed)


def sft_eval_batches(examples: Sequence[Example], pad_id: int, batch_size: int) -> list[dict]:
    return fixed_batches(examples, lambda ex: collate(ex, pad_id), batch_size)


class SFT:
    """objective(model, batch) -> {"loss", "accuracy", "n_targets" (response tokens)}; batch from `collate`."""

    def __init__(self, config: SFTConfig | None = None) -> None:
        self.config = config or SFTConfig()

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = forward(model, batch["input_ids"], batch["attention_mask"]).logits
        return token_cross_entropy(logits, batch["labels"], self.config.label_smoothing)
