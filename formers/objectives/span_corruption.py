"""T5 span corruption (Raffel et al. 2020, section 3.1.4): drop random spans, predict them.

Each dropped span is replaced in the input by one sentinel token; the target lists every
sentinel followed by the tokens it hides. Sentinels count down from the top of the
vocabulary as in T5 (`<extra_id_0>` = vocab_size - 1, `<extra_id_1>` = vocab_size - 2, ...),
so filling each sentinel of the input with its span from the target gives back the
original sequence exactly.

    original  a b c d e f g
    inputs    a b <X> e f <Y> EOS        (<X> = <extra_id_0>, <Y> = <extra_id_1>)
    targets   <X> c d <Y> g EOS
"""

from __future__ import annotations

import dataclasses

import torch

from formers.config import Config, check
from formers.errors import DataError


@dataclasses.dataclass(kw_only=True)
class SpanCorruptionConfig(Config):
    noise_density: float = 0.15  # fraction of tokens dropped
    mean_span_length: float = 3.0  # mean length of a dropped span
    n_sentinels: int = 100  # sentinel tokens at the top of the vocabulary (T5 has 100)
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.noise_density < 1.0, "SpanCorruptionConfig.noise_density", self.noise_density,
              "a value in (0, 1)")
        check(self.mean_span_length >= 1.0, "SpanCorruptionConfig.mean_span_length", self.mean_span_length, ">= 1")
        check(self.n_sentinels >= 1, "SpanCorruptionConfig.n_sentinels", self.n_sentinels, "a positive int")
        check(0.0 <= self.label_smoothing < 1.0, "SpanCorruptionConfig.label_smoothing", self.label_smoothing,
              "a value in [0, 1)")


def sentinel_id(i: int, vocab_size: int) -> int:
    """Id of `<extra_id_i>`: sentinels count down from the last id of the vocabulary."""
    return vocab_size - 1 - i


def _random_segmentation(n_items: int, n_segments: int, generator: torch.Generator) -> torch.Tensor:
    """Split `n_items` into `n_segments` positive lengths, uniformly over all such splits."""
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1].sort().values + 1  # (n_segments-1,)
    bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([n_items])])
    return bounds.diff()  # (n_segments,)


def noise_span_lengths(
    length: int, noise_density: float, mean_span_length: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept span lengths, noise span lengths), each (n_spans,), as T5's `random_spans_noise_mask`.

    The number of noise tokens is round(length * density), clamped so that at least one
    token is kept and one dropped; the number of spans is round(noise / mean_span_length).
    The sequence alternates kept, noise, kept, noise ..., starting with a kept span.
    """
    if length < 2:
        raise DataError(f"span corruption needs sequences of at least 2 tokens, got {length}")
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = min(max(round(n_noise / mean_span_length), 1), n_noise, length - n_noise)
    return (_random_segmentation(length - n_noise, n_spans, generator),
            _random_segmentation(n_noise, n_spans, generator))


def span_corrupt(
    tokens: torch.Tensor,
    *,
    noise_density: float,
    mean_span_length: float,
    vocab_size: int,
    n_sentinels: int,
    eos_id: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (T,) -> (inputs, targets), both 1-D and ending with EOS.

    inputs  = kept_0 <extra_id_0> kept_1 <extra_id_1> ... EOS
    targets = <extra_id_0> noise_0 <extra_id_1> noise_1 ... EOS
    """
    if tokens.dim() != 1:
        raise DataError(f"span_corrupt takes one sequence (1-D), got shape {tuple(tokens.shape)}")
    if bool((tokens >= vocab_size - n_sentinels).any()):
        raise DataError(f"tokens include sentinel ids (>= {vocab_size - n_sentinels}); sentinels must stay unused")
    kept, noise = noise_span_lengths(len(tokens), noise_density, mean_span_length, generator)
    if len(noise) > n_sentinels:
        raise DataError(f"{len(noise)} noise spans need more than n_sentinels={n_sentinels}; raise n_sentinels "
                        "or mean_span_length, or use shorter sequences")
    inputs, targets, pos = [], [], 0
    for i, (k, n) in enumerate(zip(kept.tolist(), noise.tolist(), strict=True)):
        sentinel = torch.tensor([sentinel_id(i, vocab_size)])
        inputs += [tokens[pos: pos + k], sentinel]
        targets += [sentinel, tokens[pos + k: pos + k + n]]
        pos += k + n
    eos = torch.tensor([eos_id])
    return torch.cat([*inputs, eos]), torch.cat([*targets, eos])


def fill_sentinels(inputs: torch.Tensor, targets: torch.Tensor, vocab_size: int, n_sentinels: int) -> torch.Tensor:
    """Put each target span back in place of its sentinel: the inverse of `span_corrupt` (EOS kept once)."""
    first_sentinel = vocab_size - n_sentinels
    spans: dict[int, list[int]] = {}
    current: list[int] = []
    for t in targets[:-1].tolist():  # the last target token is EOS, which ends `inputs` already
        if t >= first_sentinel:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    out = []
    for t in inputs.tolist():
        out.extend(spans.get(t, []) if t >= first_sentinel else [t])
    return torch.tensor(out, dtype=torch.long)
