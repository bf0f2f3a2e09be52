"""Losses of the task heads (formers/models/heads.py), and in-batch contrastive pairs.

Every objective reads a batch {"input_ids" (B, T), optional "attention_mask", "token_type_ids",
and its targets} and returns {"loss": ..., **metrics}:

- `SequenceClassification`: labels (B,) class ids -> cross-entropy, accuracy.
- `ImageClassification`: the same for an image model reading {"pixel_values" (B, C, H, W), "labels" (B,)}.
- `SequenceRegression`: labels (B,) or (B, n) reals -> mean squared error (BERT's STS-B setup).
- `TokenClassification`: labels (B, T), IGNORE_INDEX where no tag -> cross-entropy, accuracy.
- `SpanExtraction`: start_positions, end_positions (B,) -> mean of the two cross-entropies
  (Devlin et al. 2019, sec. 4.2), exact-match of the best span.
- `PairContrastive`: pair_input_ids / pair_attention_mask (B, T') -> each text must pick its own
  pair among the batch's (multiple-negatives ranking, Henderson et al. 2017): the objective
  sentence-transformers trained all-MiniLM-L6-v2 with.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from formers.errors import DataError
from formers.models.heads import POOLING, Pooling
from formers.objectives.causal_lm import token_cross_entropy


def model_inputs(batch: dict, prefix: str = "") -> dict:
    """The keyword arguments a model takes from a batch: input_ids, attention_mask (+ token_type_ids if given)."""
    inputs = {"input_ids": batch[f"{prefix}input_ids"], "attention_mask": batch.get(f"{prefix}attention_mask")}
    if batch.get(f"{prefix}token_type_ids") is not None:
        inputs["token_type_ids"] = batch[f"{prefix}token_type_ids"]
    return inputs


class SequenceClassification:
    """labels (B,) -> cross-entropy of the head's logits (B, C), and accuracy."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(**model_inputs(batch)).logits  # (B, C)
        return token_cross_entropy(logits, batch["labels"], self.label_smoothing)


class ImageClassification:
    """pixel_values (B, C, H, W), labels (B,) -> cross-entropy of an image model's logits (B, C), and accuracy."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(batch["pixel_values"]).logits  # (B, C)
        return token_cross_entropy(logits, batch["labels"], self.label_smoothing)


class SequenceRegression:
    """labels (B,) or (B, n) -> mean squared error of the head's scores (B, n), and mean absolute error."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        scores = model(**model_inputs(batch)).logits.float()  # (B, n)
        labels = batch["labels"].float().reshape(scores.shape[0], -1)  # (B, n)
        if labels.shape != scores.shape:
            raise DataError(f"regression labels of shape {tuple(batch['labels'].shape)} do not fit the head's "
                            f"{scores.shape[1]} outputs; give (B,) labels for one output, (B, n) for n")
        with torch.no_grad():
            mae = (scores - labels).abs().mean()
        return {"loss": F.mse_loss(scores, labels), "mae": mae, "n_targets": labels.numel()}


class TokenClassification:
    """labels (B, T), IGNORE_INDEX on padding / continuation pieces -> cross-entropy over tagged tokens."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        return token_cross_entropy(model(**model_inputs(batch)).logits, batch["labels"])


def best_spans(logits: torch.Tensor, attention_mask: torch.Tensor | None = None, max_len: int = 30) -> torch.Tensor:
    """(B, T, 2) start/end scores -> (B, 2) the (start, end) with start <= end < start + max_len of highest sum."""
    start, end = logits.float().unbind(-1)  # (B, T) each
    if attention_mask is not None:
        start = start.masked_fill(attention_mask == 0, float("-inf"))
        end = end.masked_fill(attention_mask == 0, float("-inf"))
    t = start.shape[1]
    offset = torch.arange(t)[None, :] - torch.arange(t)[:, None]  # (T, T): end index - start index
    allowed = (offset >= 0) & (offset < max_len)
    scores = (start[:, :, None] + end[:, None, :]).masked_fill(~allowed.to(start.device), float("-inf"))  # (B, T, T)
    flat = scores.flatten(1).argmax(-1)  # (B,)
    return torch.stack([flat // t, flat % t], dim=-1)


class SpanExtraction:
    """start_positions, end_positions (B,) -> (CE(start) + CE(end)) / 2, exact match of the best span."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(**model_inputs(batch)).logits  # (B, T, 2)
        start, end = logits.float().unbind(-1)  # (B, T) each
        loss = (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2
        with torch.no_grad():
            spans = best_spans(logits, batch.get("attention_mask"))
            gold = torch.stack([batch["start_positions"], batch["end_positions"]], dim=-1)
            exact = (spans == gold).all(-1).float().mean()
        return {"loss": loss, "exact_match": exact, "n_targets": len(logits)}


def sentence_embeddings(model: nn.Module, batch: dict, prefix: str = "", pooling: Pooling = "mean") -> torch.Tensor:
    """Pooled, L2-normalised embeddings (B, D) of a model returning last_hidden_state."""
    inputs = model_inputs(batch, prefix)
    hidden = model(**inputs).last_hidden_state  # (B, T, D)
    return F.normalize(POOLING[pooling](hidden, inputs["attention_mask"]).float(), dim=-1)


class PairContrastive:
    """Each text's pair must score highest among all pairs in the batch: CE over scale * cosine (B, B).

    scale 20 is sentence-transformers' MultipleNegativesRankingLoss default (a temperature of 0.05).
    """

    def __init__(self, scale: float = 20.0, pooling: Pooling = "mean") -> None:
        self.scale, self.pooling = scale, pooling

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        anchors = sentence_embeddings(model, batch, pooling=self.pooling)  # (B, D)
        pairs = sentence_embeddings(model, batch, prefix="pair_", pooling=self.pooling)  # (B, D)
        logits = self.scale * anchors @ pairs.T  # (B, B): row i's positive is column i
        metrics = token_cross_entropy(logits, torch.arange(len(logits), device=logits.device))
        # In-batch negatives make the loss a per-batch quantity (a larger batch is a harder task, not
        # more of the same one): no n_targets, so each micro-batch weighs 1.
        metrics.pop("n_targets")
        return metrics
