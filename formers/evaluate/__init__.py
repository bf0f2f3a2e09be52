"""Evaluation measures that are not training losses: zero-shot classification, retrieval, image quality, and
what a cheaper decoding costs (perplexity, greedy agreement)."""

from formers.evaluate.decoding import greedy_agreement, perplexity
from formers.evaluate.image_quality import (
    best_resample_codec,
    high_frequency_energy,
    laplacian_variance,
    psnr,
    resample_codec,
    ssim,
)
from formers.evaluate.zero_shot import (
    both_ways,
    chance_tail,
    class_embeddings,
    first_positive_ranks,
    retrieval_metrics,
    zero_shot_accuracy,
)

__all__ = ["both_ways", "chance_tail", "class_embeddings", "first_positive_ranks", "retrieval_metrics",
           "zero_shot_accuracy", "best_resample_codec", "high_frequency_energy", "laplacian_variance", "psnr",
           "resample_codec", "ssim", "greedy_agreement", "perplexity"]
