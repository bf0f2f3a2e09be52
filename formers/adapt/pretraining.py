"""Domain-adaptive continued pretraining (Gururangan et al. 2020, "Don't Stop Pretraining"):
run the pretraining objective on in-domain text before fine-tuning on the task.

    source = masked_text_batches(in_domain_ids, batch_size=16, seed=0, mask_id=..., vocab_size=..., special_ids=...)
    continue_pretraining(bert, source, config=TrainerConfig(max_steps=200, ...), out_dir="runs/dapt")
    classifier = with_head(SequenceClassifier, bert, n_outputs=6)   # then fine-tune as usual

It is the one Trainer with the family's own objective (MaskedLM for BERT, CausalLM for GPT);
the model is updated in place, so the same trunk object goes on to the task head.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from formers.objectives import MaskedLM
from formers.training import Trainer, TrainerConfig


def continue_pretraining(model: nn.Module, source, *, config: TrainerConfig, out_dir: str | Path,
                         objective=None, val_batches=()) -> dict:
    """Train `model` in place on in-domain batches with `objective` (default MaskedLM); returns fit()'s summary."""
    trainer = Trainer(model, objective or MaskedLM(), source, config=config, out_dir=out_dir,
                      val_batches=val_batches)
    return trainer.fit()
