"""Evaluation metrics that are not losses (captioning: BLEU-4, CIDEr-D)."""

from formers.metrics.captions import bleu4, cider_d, ngrams

__all__ = ["bleu4", "cider_d", "ngrams"]
