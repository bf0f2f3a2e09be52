"""Masked LM: the 15% rate, the 80/10/10 split, specials untouched, whole words together, the loss."""

import math

import pytest
import torch

from formers.errors import ConfigError, DataError
from formers.objectives import IGNORE_INDEX, MaskedLM, MaskedLMConfig, mask_tokens, masked_lm_loss
from formers.objectives.masked_lm import word_ids_from_starts, word_starts_from_word_ids

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = [PAD, CLS, SEP, MASK]
V = 1000


def batch(seed=0, b=64, t=256):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (b, t), generator=g)
    ids[:, 0], ids[:, t // 2], ids[:, -20:] = CLS, SEP, PAD
    return ids


def mask(ids, seed=1, **kw):
    return mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIALS,
                       generator=torch.Generator().manual_seed(seed), **kw)


def test_rate_and_80_10_10_split():
    ids = batch()
    inputs, labels = mask(ids)
    candidate = ids >= 4
    selected = labels != IGNORE_INDEX
    assert abs(selected.sum() / candidate.sum() - 0.15) < 0.01
    assert torch.equal(labels[selected], ids[selected])  # labels hold the original tokens
    n = selected.sum().item()
    as_mask = (inputs[selected] == MASK).sum().item() / n
    kept = (inputs[selected] == ids[selected]).sum().item() / n
    randomised = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.02 and abs(randomised - 0.1) < 0.015 and abs(kept - 0.1) < 0.015
    assert torch.equal(inputs[~selected], ids[~selected])  # unselected tokens are never changed


def test_special_tokens_are_never_selected_or_drawn():
    ids = batch()
    inputs, labels = mask(ids, mask_rate=0.9, mask_fraction=0.0, random_fraction=1.0)
    special = ids < 4
    assert torch.equal(inputs[special], ids[special]) and bool((labels[special] == IGNORE_INDEX).all())
    assert bool((inputs[~special] >= 4).all())  # random replacements are ordinary tokens


def test_seeded_and_deterministic():
    ids = batch()
    assert all(torch.equal(a, b) for a, b in zip(mask(ids, seed=5), mask(ids, seed=5), strict=True))
    assert not torch.equal(mask(ids, seed=5)[1], mask(ids, seed=6)[1])


def test_whole_words_are_masked_together():
    ids = batch()
    g = torch.Generator().manual_seed(2)
    starts = torch.rand(ids.shape, generator=g) < 0.4  # words of 2.5 pieces on average
    starts[:, 0] = True
    word_ids = word_ids_from_starts(starts)
    _, labels = mask(ids, word_ids=word_ids)
    selected = (labels != IGNORE_INDEX) | (ids < 4)  # specials are words of their own, never selected
    n_words, n_selected = 0, 0
    for row in range(ids.shape[0]):
        for w in word_ids[row].unique():
            pieces = (word_ids[row] == w) & (ids[row] >= 4)
            if pieces.any():
                states = selected[row][pieces]
                assert bool(states.all()) or not bool(states.any()), "a word was split"
                n_words += 1
                n_selected += int(states[0])
    assert abs(n_selected / n_words - 0.15) < 0.015


def test_word_starts_from_a_tokenizers_word_ids():
    # tokenizers' Encoding.word_ids: None for special tokens, equal ids for pieces of one word
    assert word_starts_from_word_ids([None, 0, 0, 1, 2, 2, 2, None]).tolist() == [
        False, True, False, True, True, False, False, False]
    assert word_ids_from_starts(torch.tensor([[True, False, True, True]])).tolist() == [[1, 1, 2, 3]]


def test_loss_is_cross_entropy_over_selected_positions():
    logits = torch.tensor([[[1.0, 2.0, 0.0], [0.5, 0.5, 3.0], [2.0, 0.0, 0.0]]])  # (1, 3, V=3)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    lse = [math.log(math.exp(0.5) * 2 + math.exp(3.0)), math.log(math.exp(2.0) + 2)]
    expected = ((lse[0] - 3.0) + (lse[1] - 0.0)) / 2
    out = masked_lm_loss(logits, labels)
    # fp32 against the exact value: a few roundings of 6e-8 relative each; 1e-6 relative allows ~16
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6) and out["accuracy"].item() == 0.5

    class Fake(torch.nn.Module):
        def forward(self, ids, attention_mask=None, token_type_ids=None):
            return type("Out", (), {"logits": logits})

    loss = MaskedLM()(Fake(), {"input_ids": labels, "labels": labels})["loss"].item()
    assert loss == pytest.approx(expected, rel=1e-6)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="mask_rate=0.0"):
        MaskedLMConfig(mask_rate=0.0)
    with pytest.raises(ConfigError, match="random_fraction=0.3"):
        MaskedLMConfig(mask_fraction=0.8, random_fraction=0.3)
    with pytest.raises(DataError, match="mask_id=3 must be one of special_ids"):
        mask_tokens(batch(), mask_id=MASK, vocab_size=V, special_ids=[PAD], generator=torch.Generator())
