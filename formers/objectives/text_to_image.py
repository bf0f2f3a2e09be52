"""Next-token prediction over [text; image] sequences, with the text and image losses weighted apart.

Ramesh et al. 2021, section 2.2: "We normalize the cross-entropy losses for the text and image tokens
by the total number of each kind in a batch of data. Since we are primarily interested in image
modeling, we multiply the cross-entropy loss for the text by 1/8 and the cross-entropy loss for the
image by 7/8." So

    loss = text_weight * mean CE(text tokens) + image_weight * mean CE(image tokens)

The batch holds whole sequences {"input_ids" (B, text_len + h*w)}: the caption (start token first,
padded with `pad_id` to text_len) and the image's ids. Targets are the sequence shifted by one; the
first text token is never predicted, padding never counts, and every image token does.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from formers.config import Config, check
from formers.errors import DataError
from formers.objectives.causal_lm import IGNORE_INDEX, token_cross_entropy


@dataclasses.dataclass(kw_only=True)
class TextToImageLMConfig(Config):
    text_weight: float = 1 / 8  # DALL-E's weights (section 2.2)
    image_weight: float = 7 / 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.text_weight >= 0, "TextToImageLMConfig.text_weight", self.text_weight, "a weight >= 0")
        check(self.image_weight > 0, "TextToImageLMConfig.image_weight", self.image_weight,
              "a weight > 0 (the image tokens are what the model is for)")


def split_targets(input_ids: torch.Tensor, text_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids (B, L) -> (text labels, image labels), each (B, L - 1) aligned with the logits of
    input_ids[:, :-1]: the next token where it is of that kind, IGNORE_INDEX elsewhere."""
    targets = input_ids[:, 1:]  # (B, L - 1): position j predicts token j + 1
    is_image = torch.arange(1, input_ids.shape[1], device=input_ids.device) >= text_len  # (L - 1,)
    text = targets.masked_fill(is_image[None] | (targets == pad_id), IGNORE_INDEX)
    image = targets.masked_fill(~is_image[None], IGNORE_INDEX)
    return text, image


class TextToImageLM:
    """model(input_ids) -> logits; see the module doc. `text_len` and `pad_id` say where the image starts
    and which text tokens are padding."""

    def __init__(self, config: TextToImageLMConfig | None = None, *, text_len: int, pad_id: int) -> None:
        self.config = config or TextToImageLMConfig()
        self.text_len, self.pad_id = text_len, pad_id

    def __call__(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        if ids.shape[1] <= self.text_len:
            raise DataError(f"sequences of {ids.shape[1]} tokens hold no image after text_len={self.text_len}")
        logits = model(ids[:, :-1]).logits  # (B, L - 1, V)
        text_labels, image_labels = split_targets(ids, self.text_len, self.pad_id)
        image = token_cross_entropy(logits, image_labels)
        result = {"image_loss": image["loss"].detach(), "image_accuracy": image["accuracy"]}
        loss = self.config.image_weight * image["loss"]
        if self.config.text_weight > 0:
            text = token_cross_entropy(logits, text_labels)
            loss = loss + self.config.text_weight * text["loss"]
            result["text_loss"] = text["loss"].detach()
        result["loss"] = loss
        return result
