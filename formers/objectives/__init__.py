"""Objectives: turn a batch into inputs and targets, and a model's output into a loss."""

from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM, CausalLMConfig, token_cross_entropy
from formers.objectives.classification import (
    PairContrastive,
    SequenceClassification,
    SequenceRegression,
    SpanExtraction,
    TokenClassification,
    best_spans,
    model_inputs,
    sentence_embeddings,
)
from formers.objectives.contrastive import Contrastive, ContrastiveConfig, info_nce, matches_from_ids
from formers.objectives.denoising import (
    BartNoiseConfig,
    bart_noise,
    document_rotation,
    sentence_permutation,
    text_infilling,
    token_deletion,
    token_masking,
)
from formers.objectives.image_losses import (
    L1,
    L2,
    Adversarial,
    FeatureNetwork,
    ImageLoss,
    ImageLossConfig,
    Perceptual,
    Style,
    adaptive_weight,
    gram_matrix,
    load_feature_network,
)
from formers.objectives.masked_lm import MaskedLM, MaskedLMConfig, mask_tokens, masked_lm_loss, word_ids_from_starts
from formers.objectives.nsp import BertPretraining, next_sentence_loss, next_sentence_pairs
from formers.objectives.prefix_lm import PrefixLM, prefix_lm_split
from formers.objectives.reconstruction import ImageReconstruction
from formers.objectives.seq2seq import Seq2SeqLM, Seq2SeqLMConfig, collate_pairs, pad_sequences, shift_right
from formers.objectives.span_corruption import SpanCorruptionConfig, fill_sentinels, sentinel_id, span_corrupt

__all__ = [
    "IGNORE_INDEX", "BartNoiseConfig", "BertPretraining", "CausalLM", "CausalLMConfig", "MaskedLM", "MaskedLMConfig",
    "PrefixLM", "Seq2SeqLM", "Seq2SeqLMConfig", "SpanCorruptionConfig", "bart_noise", "collate_pairs",
    "document_rotation", "fill_sentinels", "mask_tokens", "masked_lm_loss", "next_sentence_loss",
    "next_sentence_pairs", "pad_sequences", "prefix_lm_split", "sentence_permutation", "sentinel_id",
    "shift_right", "span_corrupt", "text_infilling", "token_cross_entropy", "token_deletion", "token_masking",
    "word_ids_from_starts",
    "PairContrastive", "SequenceClassification", "SequenceRegression", "SpanExtraction", "TokenClassification",
    "best_spans", "model_inputs", "sentence_embeddings",
    "Contrastive", "ContrastiveConfig", "info_nce", "matches_from_ids",
    "L1", "L2", "Adversarial", "FeatureNetwork", "ImageLoss", "ImageLossConfig", "ImageReconstruction", "Perceptual",
    "Style", "adaptive_weight", "gram_matrix", "load_feature_network",
]
