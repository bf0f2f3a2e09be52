"""Tiny models, batches and trainer settings shared by the adaptation tests."""

import torch

from formers.models import Bert, BertConfig, SequenceClassifier, with_head
from formers.training import TrainerConfig

TINY = dict(vocab_size=40, d_model=32, n_heads=4, n_layers=3, max_seq_len=24, dropout=0.0)


def tiny_classifier(seed: int = 0, n_outputs: int = 3, **bert) -> SequenceClassifier:
    torch.manual_seed(seed)
    return with_head(SequenceClassifier, Bert(BertConfig(**{**TINY, **bert})), n_outputs=n_outputs, pooling="mean",
                     dropout=0.0)


def quiet(**kw) -> TrainerConfig:
    base = dict(progress=False, tensorboard=False, eval_every=0, log_every=1, grad_clip=None, precision="fp32",
                schedule={"kind": "constant"}, optimizer={"lr": 1e-2, "weight_decay": 0.1})
    return TrainerConfig(**{**base, **kw})


class Batches:
    """Random (input_ids, attention_mask, labels) batches from a seeded generator; resumable by step."""

    def __init__(self, vocab: int = 40, batch: int = 4, t: int = 10, n_labels: int = 3, seed: int = 0) -> None:
        self.vocab, self.batch, self.t, self.n_labels, self.seed, self.step = vocab, batch, t, n_labels, seed, 0

    def next_batch(self) -> dict:
        g = torch.Generator().manual_seed(self.seed * 1000 + self.step)
        self.step += 1
        ids = torch.randint(4, self.vocab, (self.batch, self.t), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.randint(0, self.n_labels, (self.batch,), generator=g)}

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
