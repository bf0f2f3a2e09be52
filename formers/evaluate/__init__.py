"""Evaluation of trained models beyond their training loss: zero-shot classification, retrieval."""

from formers.evaluate.zero_shot import (
    both_ways,
    chance_tail,
    class_embeddings,
    first_positive_ranks,
    retrieval_metrics,
    zero_shot_accuracy,
)

__all__ = ["both_ways", "chance_tail", "class_embeddings", "first_positive_ranks", "retrieval_metrics",
           "zero_shot_accuracy"]
