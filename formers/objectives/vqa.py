"""Visual question answering as classification over a fixed answer vocabulary (Antol et al. 2015).

The model reads the question (input_ids, attention_mask) and the image (pixel_values) and returns
logits over the answers (B, A); the loss is cross-entropy against `answers` (B,). Shapes questions have
exactly one right answer, so the soft VQA-score targets of VQA v2 (Teney et al. 2018) reduce to this.
"""

from __future__ import annotations

import torch
from torch import nn

from formers.objectives.causal_lm import token_cross_entropy
from formers.objectives.classification import model_inputs


def fusion_inputs(batch: dict, prefix: str = "") -> dict:
    """A fusion model's keyword arguments: the text's (input_ids, attention_mask, ...) and the pixels."""
    return {**model_inputs(batch, prefix), "pixel_values": batch["pixel_values"]}


class VQALoss:
    """answers (B,) -> cross-entropy of the model's answer logits (B, A), and accuracy."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(**fusion_inputs(batch)).logits  # (B, A)
        return token_cross_entropy(logits, batch["answers"], self.label_smoothing)


@torch.no_grad()
def predict_answers(model: nn.Module, batches: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(predicted (N,), answers (N,), question_types (N,)) over fixed batches, in eval mode."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    got, want, kinds = [], [], []
    for batch in batches:
        inputs = {k: v.to(device) if v is not None else None for k, v in fusion_inputs(batch).items()}
        got.append(model(**inputs).logits.argmax(-1).cpu())
        want.append(batch["answers"])
        kinds.append(batch["question_types"])
    model.train(was)
    return torch.cat(got), torch.cat(want), torch.cat(kinds)
