"""BART noising (Lewis et al. 2020, section 2.2): corrupt a document, train to restore it.

Each function maps one 1-D token sequence to a noised one; the target is always the
original. `bart_noise` applies the configured ones in fairseq's order: sentence
permutation, text infilling, token masking, token deletion, document rotation. The loss
is the encoder-decoder cross-entropy of seq2seq.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from formers.config import Config, check
from formers.errors import DataError


@dataclasses.dataclass(kw_only=True)
class BartNoiseConfig(Config):
    infilling_rate: float = 0.3  # fraction of tokens inside masked spans (BART: 30%)
    poisson_lambda: float = 3.0  # mean span length of text infilling
    permute_rate: float = 1.0  # fraction of sentences shuffled among themselves (BART: all)
    mask_rate: float = 0.0  # token masking: each token -> [MASK] with this probability
    deletion_rate: float = 0.0  # token deletion: each token dropped with this probability
    rotate_rate: float = 0.0  # probability of rotating the document to start at a random token
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("infilling_rate", "permute_rate", "mask_rate", "deletion_rate", "rotate_rate"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, f"BartNoiseConfig.{name}", value, "a value in [0, 1]")
        check(self.poisson_lambda > 0, "BartNoiseConfig.poisson_lambda", self.poisson_lambda, "> 0")
        check(0.0 <= self.label_smoothing < 1.0, "BartNoiseConfig.label_smoothing", self.label_smoothing,
              "a value in [0, 1)")


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def token_masking(tokens: torch.Tensor, rate: float, mask_id: int, generator: torch.Generator) -> torch.Tensor:
    """Each token becomes [MASK] with probability `rate` (BERT-style, length kept)."""
    return torch.where(_uniform(len(tokens), generator) < rate, torch.full_like(tokens, mask_id), tokens)


def token_deletion(tokens: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Each token is dropped with probability `rate`: the model must also find where input is missing."""
    return tokens[_uniform(len(tokens), generator) >= rate]


def poisson_span_lengths(n_masked: int, poisson_lambda: float, generator: torch.Generator) -> list[int]:
    """Span lengths ~ Poisson(lambda) drawn until they cover `n_masked` tokens; the last one is cut to fit.

    Zero-length spans stay: each inserts a [MASK] that hides nothing (BART: the model must
    learn how many tokens a [MASK] stands for, including none).
    """
    lengths: list[int] = []
    while sum(lengths) < n_masked:
        draws = torch.poisson(torch.full((n_masked + 1,), poisson_lambda), generator=generator).long().tolist()
        lengths.extend(draws)
    total, out = 0, []
    for length in lengths:
        if total >= n_masked:
            break
        out.append(min(length, n_masked - total))
        total += out[-1]
    return out


def text_infilling(
    tokens: torch.Tensor, rate: float, mask_id: int, generator: torch.Generator, poisson_lambda: float = 3.0
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Replace spans covering round(rate * T) tokens by one [MASK] each; returns (noised, spans).

    `spans` lists (start, length) in the original, in order; the i-th [MASK] of the output
    stands for the i-th span. Spans never overlap: the kept tokens and the spans are laid out
    in a uniformly random order, so a zero-length span is an inserted [MASK].
    """
    n = len(tokens)
    lengths = poisson_span_lengths(round(n * rate), poisson_lambda, generator)
    n_kept, k = n - sum(lengths), len(lengths)
    is_span = torch.zeros(n_kept + k, dtype=torch.bool)  # the combined order of kept tokens and spans
    is_span[torch.randperm(n_kept + k, generator=generator)[:k]] = True
    out, spans, pos, span_index = [], [], 0, 0
    for slot_is_span in is_span.tolist():
        if slot_is_span:
            length = lengths[span_index]
            out.append(mask_id)
            spans.append((pos, length))
            pos, span_index = pos + length, span_index + 1
        else:
            out.append(int(tokens[pos]))
            pos += 1
    return torch.tensor(out, dtype=torch.long), spans


def split_sentences(tokens: torch.Tensor, sentence_end_ids: Sequence[int]) -> list[torch.Tensor]:
    """Cut after every sentence-ending token; a trailing piece without one is a sentence too."""
    ends = torch.isin(tokens, torch.tensor(list(sentence_end_ids), dtype=torch.long)).nonzero().squeeze(1) + 1
    bounds = [0, *[e for e in ends.tolist() if e < len(tokens)], len(tokens)]
    return [tokens[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def sentence_permutation(
    tokens: torch.Tensor, rate: float, sentence_end_ids: Sequence[int], generator: torch.Generator
) -> torch.Tensor:
    """Shuffle ceil(rate * n_sentences) randomly chosen sentences among their own places (fairseq)."""
    sentences = split_sentences(tokens, sentence_end_ids)
    n = len(sentences)
    n_permute = math.ceil(n * rate)
    chosen = torch.randperm(n, generator=generator)[:n_permute]  # the places that take part
    order = torch.arange(n)
    order[chosen] = chosen[torch.randperm(n_permute, generator=generator)]
    return torch.cat([sentences[i] for i in order.tolist()]) if sentences else tokens


def document_rotation(tokens: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """With probability `rate`, rotate so the document starts at a random token (never the first)."""
    if len(tokens) < 2 or float(_uniform(1, generator)) >= rate:
        return tokens
    offset = int(torch.randint(1, len(tokens), (1,), generator=generator))
    return torch.cat([tokens[offset:], tokens[:offset]])


def bart_noise(
    tokens: torch.Tensor,
    config: BartNoiseConfig,
    *,
    mask_id: int,
    sentence_end_ids: Sequence[int],
    generator: torch.Generator,
) -> torch.Tensor:
    """Apply every noising `config` switches on (rate > 0) to one sequence (T,) -> noised (T',)."""
    if tokens.dim() != 1:
        raise DataError(f"bart_noise takes one sequence (1-D), got shape {tuple(tokens.shape)}")
    c = config
    if c.permute_rate > 0:
        tokens = sentence_permutation(tokens, c.permute_rate, sentence_end_ids, generator)
    if c.infilling_rate > 0:
        tokens = text_infilling(tokens, c.infilling_rate, mask_id, generator, c.poisson_lambda)[0]
    if c.mask_rate > 0:
        tokens = token_masking(tokens, c.mask_rate, mask_id, generator)
    if c.deletion_rate > 0:
        tokens = token_deletion(tokens, c.deletion_rate, generator)
    if c.rotate_rate > 0:
        tokens = document_rotation(tokens, c.rotate_rate, generator)
    return tokens
