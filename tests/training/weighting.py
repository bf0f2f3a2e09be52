"""Shared by test_weighting.py and weighting_worker.py: micro-batches whose target counts differ."""

from __future__ import annotations

import torch

from formers.models import GPT, GPTConfig
from formers.objectives import IGNORE_INDEX
from formers.training import Trainer, TrainerConfig

TINY = GPTConfig(vocab_size=31, d_model=16, n_heads=2, n_layers=1, max_seq_len=16, dropout=0.0)
TARGETS = [14, 0, 3, 9]  # targets in each micro-batch of 2 rows x 8 positions; one has none at all


def micro_batches() -> list[dict[str, torch.Tensor]]:
    """Len(TARGETS) micro-batches of (2, 8) token ids; labels keep the first TARGETS[i] positions."""
    g = torch.Generator().manual_seed(0)
    out = []
    for n in TARGETS:
        ids = torch.randint(0, TINY.vocab_size, (2, 9), generator=g)
        labels = ids[:, 1:].clone().reshape(-1)  # (16,)
        labels[n:] = IGNORE_INDEX
        out.append({"input_ids": ids[:, :-1], "labels": labels.reshape(2, 8)})
    return out


def joined(batches: list[dict]) -> dict[str, torch.Tensor]:
    """The micro-batches as one large batch."""
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


class Queue:
    """A batch source over a fixed list (no resume needed)."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = list(batches)

    def next_batch(self) -> dict:
        return self.batches.pop(0)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def step_gradients(objective, batches: list[dict], grad_accum: int, out_dir, **config) -> tuple[dict, dict, Trainer]:
    """One optimizer step of a fresh TINY GPT: (the gradients it stepped on, its reported metrics, the trainer)."""
    torch.manual_seed(0)
    model = GPT(TINY)
    seen = {}

    def capture(trainer) -> None:  # callbacks see the step's final gradients
        seen.update({n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None})

    # fp32 whatever the CPU: `auto` would pick bf16 on AMX, whose rounding (~1e-2) hides the 1e-6 being checked
    config = {"precision": "fp32", **config}
    cfg = TrainerConfig(max_steps=1, batch_size=2, grad_accum=grad_accum, grad_clip=None, progress=False,
                        tensorboard=False, eval_every=0, **config)
    trainer = Trainer(model, objective, Queue(batches), config=cfg, out_dir=out_dir, callbacks=[capture])
    metrics = trainer.train_step()
    return seen, metrics, trainer


def relative_error(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """||ours - reference|| / ||reference|| over every gradient together."""
    assert ours.keys() == reference.keys()
    diff = sum(float((ours[k].double() - reference[k].double()).pow(2).sum()) for k in reference)
    return (diff / sum(float(v.double().pow(2).sum()) for v in reference.values())) ** 0.5
