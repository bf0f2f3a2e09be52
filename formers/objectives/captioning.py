"""Captioning loss: teacher-forced next-token cross-entropy of a caption given the image.

Batches are Shapes `CaptionBatches` encoded with wrap=("[BOS]", "[EOS]"): input_ids (B, T) = [BOS] words
[EOS] [PAD]...; the decoder reads ids[:, :-1] and predicts ids[:, 1:] (padding ignored), so it learns to
end captions with [EOS], where `generate` stops.
"""

from __future__ import annotations

import torch
from torch import nn

from formers.objectives.causal_lm import IGNORE_INDEX, token_cross_entropy


class CaptionLM:
    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        logits = model(pixel_values=batch["pixel_values"], decoder_input_ids=ids[:, :-1],
                       decoder_attention_mask=mask[:, :-1]).logits  # (B, T-1, V)
        labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)  # (B, T-1)
        return token_cross_entropy(logits, labels, self.label_smoothing)


def caption_texts(tokenizer, rows: torch.Tensor, eos_id: int) -> list[str]:
    """Generated ids (B, 1 + new) -> texts: the start token dropped, cut at the first [EOS]."""
    out = []
    for row in rows[:, 1:].tolist():
        out.append(tokenizer.decode(row[: row.index(eos_id)] if eos_id in row else row))
    return out
