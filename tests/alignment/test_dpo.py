"""DPO against its closed form, and on a model that equals its reference."""

import math

import pytest
import torch

from formers.alignment import DPO, DPOConfig, collate_pairs, dpo_loss, encode_records, frozen_copy
from formers.alignment.data import PREFERENCE_FIELDS
from formers.errors import ConfigError

from .conftest import length_task, tiny_gpt

PC, PR, RC, RR = torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-1.5]), torch.tensor([-2.5])


def test_dpo_loss_equals_its_closed_form():
    out = dpo_loss(PC, PR, RC, RR, beta=0.5)
    logits = 0.5 * ((-1.0 + 1.5) - (-3.0 + 2.5))  # = 0.5
    assert out["loss"].item() == pytest.approx(math.log1p(math.exp(-logits)))  # -log sigmoid
    assert out["chosen_reward"].item() == pytest.approx(0.25) and out["rejected_reward"].item() == pytest.approx(-0.25)


def test_reference_free_dpo_drops_the_reference():
    out = dpo_loss(PC, PR, None, None, beta=0.5)
    assert out["loss"].item() == pytest.approx(math.log1p(math.exp(-0.5 * 2.0)))


def test_conservative_dpo_smooths_the_label():
    out = dpo_loss(PC, PR, RC, RR, beta=0.5, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-0.5)) + 0.1 * math.log1p(math.exp(0.5))
    assert out["loss"].item() == pytest.approx(expected)


def test_dpo_objective_starts_at_log_two_and_trains(tokenizer):
    policy = tiny_gpt(tokenizer.vocab_size)
    records = length_task(n_train=16).preferences("train")
    batch = collate_pairs(encode_records(records, PREFERENCE_FIELDS, tokenizer, 24), tokenizer.pad_id)
    objective = DPO(DPOConfig(beta=0.5), frozen_copy(policy))
    first = objective(policy, batch)
    assert first["loss"].item() == pytest.approx(math.log(2), abs=1e-6)  # policy == reference: implied rewards 0
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    for _ in range(10):
        optimizer.zero_grad()
        objective(policy, batch)["loss"].backward()
        optimizer.step()
    last = objective(policy, batch)
    assert last["loss"] < first["loss"] - 0.1 and last["accuracy"] > 0.9


def test_dpo_refuses_a_missing_or_unwanted_reference(tokenizer):
    with pytest.raises(ConfigError, match="frozen reference"):
        DPO(DPOConfig())
    with pytest.raises(ConfigError, match="reference_free=True takes no reference"):
        DPO(DPOConfig(reference_free=True), frozen_copy(tiny_gpt(tokenizer.vocab_size)))
