"""The reward model learns a preference; its score ignores padding; it saves and loads as a model."""

import pytest
import torch

import formers
from formers.alignment import (
    RewardModel,
    RewardObjective,
    bradley_terry_loss,
    collate_pairs,
    encode_records,
    fixed_batches,
    pairwise_accuracy,
)
from formers.alignment.data import PREFERENCE_FIELDS, RecordBatches
from formers.training import Trainer, TrainerConfig

from .conftest import length_task, tiny_gpt


def test_bradley_terry_loss_by_hand():
    chosen, rejected = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    expected = (torch.log1p(torch.exp(torch.tensor(-1.0))) + torch.log(torch.tensor(2.0))) / 2
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected.item())
    # with margin 1, a gap of 1 counts as no gap and a gap of 0 as a gap of -1
    expected = (torch.log(torch.tensor(2.0)) + torch.log1p(torch.exp(torch.tensor(1.0)))) / 2
    assert bradley_terry_loss(chosen, rejected, margin=1.0).item() == pytest.approx(expected.item())


def test_reward_model_loss_falls_and_accuracy_rises(tokenizer, tmp_path):
    task = length_task(n_train=2000, n_val=128)
    pad = tokenizer.pad_id
    train = encode_records(task.preferences("train"), PREFERENCE_FIELDS, tokenizer, 24)
    val = fixed_batches(encode_records(task.preferences("val"), PREFERENCE_FIELDS, tokenizer, 24),
                        lambda ex: collate_pairs(ex, pad), 64)
    model = RewardModel.from_trunk(tiny_gpt(tokenizer.vocab_size))
    before = pairwise_accuracy(model, val)
    config = TrainerConfig(max_steps=120, batch_size=32, optimizer={"lr": 2e-3, "weight_decay": 0.0},
                           schedule={"kind": "constant"}, eval_every=0, progress=False, tensorboard=False,
                           precision="fp32")
    source = RecordBatches(train, lambda ex: collate_pairs(ex, pad), batch_size=32, seed=0)
    result = Trainer(model, RewardObjective(), source, config=config, out_dir=tmp_path, val_batches=val).fit()
    first, last = result["first_eval"], result["last_eval"]
    assert last["val/loss"] < 0.5 * first["val/loss"], (first, last)
    assert before < 0.7 and pairwise_accuracy(model, val) > 0.9, (before, last)
    # the Trainer's checkpoint is an ordinary model folder: formers.load rebuilds the reward model
    loaded = formers.load(tmp_path)
    assert isinstance(loaded, RewardModel) and pairwise_accuracy(loaded, val) == pairwise_accuracy(model, val)


def test_score_reads_the_last_real_token_whatever_the_padding(tokenizer):
    model = RewardModel.from_trunk(tiny_gpt(tokenizer.vocab_size)).eval()
    ids = torch.tensor([tokenizer.encode("len 3:abc") + [tokenizer.eos_id]])
    alone = model(ids).logits
    pad = torch.zeros(1, 3, dtype=torch.long)
    ones, zeros = torch.ones_like(ids), torch.zeros_like(pad)
    right = model(torch.cat([ids, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
    left = model(torch.cat([pad, ids], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
    torch.testing.assert_close(right, alone)
    torch.testing.assert_close(left, alone)
