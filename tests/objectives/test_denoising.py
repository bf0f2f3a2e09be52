"""BART noising: masking and deletion rates, Poisson infilling that reconstructs, permutation, rotation."""

import math
from collections import Counter

import pytest
import torch

from formers.errors import ConfigError
from formers.objectives import (
    BartNoiseConfig,
    bart_noise,
    document_rotation,
    sentence_permutation,
    text_infilling,
    token_deletion,
    token_masking,
)
from formers.objectives.denoising import poisson_span_lengths, split_sentences

MASK, DOT = 3, 4


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def doc(n=2000, seed=0):
    return torch.randint(5, 300, (n,), generator=gen(seed))


def test_token_masking_rate():
    tokens = doc()
    out = token_masking(tokens, 0.2, MASK, gen())
    changed = out != tokens
    assert abs(changed.float().mean().item() - 0.2) < 0.02 and bool((out[changed] == MASK).all())


def test_token_deletion_count_and_order():
    tokens = torch.arange(2000)
    out = token_deletion(tokens, 0.25, gen())
    assert abs((2000 - len(out)) / 2000 - 0.25) < 0.025
    assert bool((out.diff() > 0).all())  # what is left is in its original order


def test_text_infilling_reconstructs_and_masks_the_rate():
    for seed in range(5):
        tokens = doc(500, seed)
        out, spans = text_infilling(tokens, 0.3, MASK, gen(seed))
        assert sum(length for _, length in spans) == round(500 * 0.3)
        assert (out == MASK).sum() == len(spans)  # one [MASK] per span, whatever its length
        rebuilt, mask_index = [], 0
        for t in out.tolist():
            if t == MASK:
                start, length = spans[mask_index]
                rebuilt += tokens[start: start + length].tolist()
                mask_index += 1
            else:
                rebuilt.append(t)
        assert rebuilt == tokens.tolist()


def test_infilling_span_lengths_are_poisson():
    lengths = []
    for seed in range(40):
        lengths += poisson_span_lengths(300, 3.0, gen(seed))[:-1]  # the last span is cut to fit
    mean = sum(lengths) / len(lengths)
    zero_share = lengths.count(0) / len(lengths)
    assert abs(mean - 3.0) < 0.15 and abs(zero_share - math.exp(-3.0)) < 0.02  # P(0) of Poisson(3) ~ 5%


def sentences(tokens):
    return Counter(tuple(s.tolist()) for s in split_sentences(tokens, [DOT]))


def test_sentence_permutation_keeps_the_multiset_of_sentences():
    tokens = torch.tensor([10, 11, DOT, 12, DOT, 13, 14, 15, DOT, 16, DOT, 17, DOT, 18, DOT])  # 6 sentences
    orders = set()
    for seed in range(10):
        out = sentence_permutation(tokens, 1.0, [DOT], gen(seed))
        assert sentences(out) == sentences(tokens)
        orders.add(tuple(out.tolist()))
    assert len(orders) > 5
    assert torch.equal(sentence_permutation(tokens, 0.0, [DOT], gen()), tokens)


def test_partial_permutation_moves_at_most_its_share():
    tokens = torch.tensor([t for i in range(10) for t in (100 + i, DOT)])  # 10 two-token sentences
    for seed in range(10):
        out = sentence_permutation(tokens, 0.3, [DOT], gen(seed))
        assert sentences(out) == sentences(tokens)
        assert (out != tokens).sum() <= 3  # ceil(0.3 * 10) places take part


def test_an_unterminated_tail_is_a_sentence():
    tokens = torch.tensor([10, 11, DOT, 12, DOT, 13, 14])
    assert [s.tolist() for s in split_sentences(tokens, [DOT])] == [[10, 11, DOT], [12, DOT], [13, 14]]


def test_document_rotation_is_a_rotation():
    tokens = torch.arange(50)
    for seed in range(10):
        out = document_rotation(tokens, 1.0, gen(seed))
        offset = int(out[0])
        assert offset != 0 and torch.equal(out, torch.cat([tokens[offset:], tokens[:offset]]))
    assert torch.equal(document_rotation(tokens, 0.0, gen()), tokens)
    rotated = sum(not torch.equal(document_rotation(tokens, 0.3, gen(s)), tokens) for s in range(200))
    assert abs(rotated / 200 - 0.3) < 0.08


def test_bart_noise_composes_and_is_seeded():
    tokens = doc(300)
    tokens[::10] = DOT
    config = BartNoiseConfig(infilling_rate=0.3, permute_rate=1.0, deletion_rate=0.1, rotate_rate=0.5)
    a = bart_noise(tokens, config, mask_id=MASK, sentence_end_ids=[DOT], generator=gen(1))
    b = bart_noise(tokens, config, mask_id=MASK, sentence_end_ids=[DOT], generator=gen(1))
    assert torch.equal(a, b) and len(a) < 300 * 0.8 and bool((a == MASK).any())
    with pytest.raises(ConfigError, match="deletion_rate=1.5"):
        BartNoiseConfig(deletion_rate=1.5)
