"""Forgetting at reduced size: full fine-tuning forgets more than EWC, LoRA and rehearsal (fixed seeds).

A tiny BERT is pretrained by masked LM on an "original language" (a repeated 3-token motif, so a
masked token can be copied from its neighbours), then fine-tuned on a new task over random tokens.
Forgetting is the drop in masked-token accuracy on held-out original-language text.
"""

import pytest
import torch

from formers.adapt import (
    EWC,
    Rehearsal,
    apply_lora,
    continue_pretraining,
    fisher_diagonal,
    masked_text_batches,
    objective_with_penalty,
    with_rehearsal,
)
from formers.data.tasks import SeededBatches
from formers.models import Bert, BertConfig, SequenceClassifier, with_head
from formers.objectives import MaskedLM, SequenceClassification
from formers.training import Trainer
from tests.adapt.helpers import TINY, quiet

MASK_ID, SPECIALS, ORDINARY = 3, [0, 1, 2, 3], 36  # ids 4..39 are ordinary tokens


def original_language(n: int, seed: int) -> list[list[int]]:
    """[CLS] a b c a b c a b c a b c [SEP]: a random 3-token motif repeated, so a masked token is a copy."""
    g = torch.Generator().manual_seed(seed)
    motifs = torch.randint(4, 4 + ORDINARY, (n, 3), generator=g)
    return [[1, *m.repeat(4).tolist(), 2] for m in motifs]


def mlm_source(seed: int) -> SeededBatches:
    return masked_text_batches(original_language(512, seed), batch_size=32, seed=seed, mask_id=MASK_ID,
                               vocab_size=40, special_ids=SPECIALS)


def new_task(g: torch.Generator) -> dict:
    """Random tokens; the label says whether most of them lie in the lower half of the vocabulary."""
    ids = torch.randint(4, 40, (16, 13), generator=g)
    ids[:, 0] = 1
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ((ids[:, 1:] < 22).sum(1) > 6).long()}


def trunk_mlm(model, batch):
    return MaskedLM()(model.trunk, batch)


@torch.no_grad()
def mlm_accuracy(model, batches) -> float:
    model.eval()
    return sum(float(trunk_mlm(model, b)["accuracy"]) for b in batches) / len(batches)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bert = Bert(BertConfig(**TINY))
    cfg = quiet(max_steps=250, log_every=50, optimizer={"lr": 3e-3, "weight_decay": 0.0})
    continue_pretraining(bert, mlm_source(seed=1), config=cfg, out_dir=tmp_path_factory.mktemp("pretrain"))
    heldout = [mlm_source(seed=99).next_batch() for _ in range(4)]
    return bert, heldout


def fine_tune(pretrained, strategy: str, out) -> float:
    """Fine-tune a copy with `strategy`; returns the drop in held-out masked-token accuracy."""
    import copy

    bert, heldout = pretrained
    torch.manual_seed(0)
    model = with_head(SequenceClassifier, copy.deepcopy(bert), n_outputs=2, pooling="mean", dropout=0.0)
    before = mlm_accuracy(model, heldout)
    objective, source = SequenceClassification(), SeededBatches(new_task, seed=5)
    if strategy == "ewc":
        fisher = fisher_diagonal(model, trunk_mlm, [mlm_source(seed=2).next_batch() for _ in range(4)],
                                 normalize=True)
        objective = objective_with_penalty(objective, EWC(model, fisher, strength=10.0))
    elif strategy == "lora":
        apply_lora(model.trunk, targets=("qkv", "out", "up", "down"), rank=2, alpha=4)
    elif strategy == "rehearsal":
        source = Rehearsal(source, mlm_source(seed=3), fraction=0.5)
        objective = with_rehearsal(objective, trunk_mlm)
    cfg = quiet(max_steps=60, log_every=20, optimizer={"lr": 3e-3, "weight_decay": 0.0})
    fit = Trainer(model, objective, source, config=cfg, out_dir=out, val_batches=[new_task(
        torch.Generator().manual_seed(7))]).fit()
    assert fit["last_eval"]["val/loss"] < fit["first_eval"]["val/loss"]  # every strategy learns the new task
    return before - mlm_accuracy(model, heldout)


def test_full_fine_tuning_forgets_more_than_ewc_lora_and_rehearsal(pretrained, tmp_path):
    bert, heldout = pretrained
    assert mlm_accuracy(with_head(SequenceClassifier, bert, n_outputs=2), heldout) > 0.9  # it learned the language
    forgetting = {s: fine_tune(pretrained, s, tmp_path / s) for s in ("full", "ewc", "lora", "rehearsal")}
    print(forgetting)  # e.g. shown with pytest -s
    assert forgetting["full"] > 0.1
    for strategy in ("ewc", "lora", "rehearsal"):
        assert forgetting[strategy] < forgetting["full"] / 2, forgetting
