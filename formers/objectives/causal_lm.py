"""Next-token prediction: the loss of every decoder-only language model."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check

IGNORE_INDEX = -100  # label value excluded from the loss (padding, prompt tokens)


@dataclasses.dataclass(kw_only=True)
class CausalLMConfig(Config):
    label_smoothing: float = 0.0  # Szegedy et al. 2016; the original Transformer used 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "CausalLMConfig.label_smoothing", self.label_smoothing, "[0, 1)")


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> dict:
    """Mean cross-entropy over positions whose label is not IGNORE_INDEX, plus accuracy."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()  # softmax in fp32 even under bf16 autocast
    flat_labels = labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
    with torch.no_grad():
        valid = flat_labels != IGNORE_INDEX
        correct = (flat_logits.argmax(-1) == flat_labels) & valid
        accuracy = correct.sum() / valid.sum().clamp(min=1)
    return {"loss": loss, "accuracy": accuracy}


class CausalLM:
    """batch {"input_ids" (B,T), "labels" (B,T) already shifted, optional "attention_mask"} -> loss."""

    def __init__(self, config: CausalLMConfig | None = None) -> None:
        self.config = config or CausalLMConfig()

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        return token_cross_entropy(logits, batch["labels"], self.config.label_smoothing)
