"""Encoder-decoder training: teacher forcing with label-smoothed cross-entropy (Vaswani et al. 2017).

The decoder reads the target shifted right by one, starting from the model's
`decoder_start_token_id`, and predicts the target itself. Label smoothing (Szegedy et al.
2016; the original Transformer used 0.1) trains on the smoothed loss; `nll_loss` reports the
plain cross-entropy, which is what a baseline compares with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check
from formers.data.batches import pad_sequences
from formers.objectives.causal_lm import IGNORE_INDEX, Weighted, token_cross_entropy


@dataclasses.dataclass(kw_only=True)
class Seq2SeqLMConfig(Config):
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "Seq2SeqLMConfig.label_smoothing", self.label_smoothing,
              "a value in [0, 1)")


def shift_right(labels: torch.Tensor, decoder_start_token_id: int, pad_id: int) -> torch.Tensor:
    """labels (B, T) -> decoder inputs (B, T): [start, y_0, ..., y_{T-2}], IGNORE_INDEX read as padding."""
    start = torch.full_like(labels[:, :1], decoder_start_token_id)
    shifted = torch.cat([start, labels[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == IGNORE_INDEX, pad_id)


def collate_pairs(sources: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], pad_id: int) -> dict:
    """(source, target) token sequences -> {"input_ids", "attention_mask", "labels"} (padding ignored)."""
    input_ids = pad_sequences(sources, pad_id)
    source_lengths = torch.tensor([len(s) for s in sources])
    attention_mask = (torch.arange(input_ids.shape[1])[None] < source_lengths[:, None]).long()  # (B, T_src)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": pad_sequences(targets, IGNORE_INDEX)}


class Seq2SeqLM:
    """batch {"input_ids", "attention_mask", "labels"} -> label-smoothed loss, nll_loss, token and sequence accuracy,
    n_targets (target tokens).

    The decoder start token is the model's own (`model.config.decoder_start_token_id`) unless
    given. The target's right padding needs no decoder mask: the decoder is causal, so a real
    position never sees a later padded one, and padded positions are excluded from the loss.
    """

    def __init__(
        self, config: Seq2SeqLMConfig | None = None, *, decoder_start_token_id: int | None = None, pad_id: int = 0
    ) -> None:
        self.config = config or Seq2SeqLMConfig()
        self.decoder_start_token_id, self.pad_id = decoder_start_token_id, pad_id

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        labels = batch["labels"]
        start = self.decoder_start_token_id
        start = model.config.decoder_start_token_id if start is None else start
        out = model(
            batch["input_ids"], attention_mask=batch.get("attention_mask"),
            decoder_input_ids=shift_right(labels, start, self.pad_id),
        )
        metrics = token_cross_entropy(out.logits, labels, self.config.label_smoothing)
        with torch.no_grad():
            flat = out.logits.reshape(-1, out.logits.shape[-1]).float()
            metrics["nll_loss"] = F.cross_entropy(flat, labels.reshape(-1), ignore_index=IGNORE_INDEX)
            # Every target token right under teacher forcing = greedy decoding reproduces the target exactly.
            wrong = (out.logits.argmax(-1) != labels) & (labels != IGNORE_INDEX)
            metrics["sequence_accuracy"] = Weighted((~wrong.any(dim=1)).float().mean(), len(labels))  # per sequence
        return metrics
