"""Late fusion: each modality encoded alone, pooled, concatenated, then an MLP (the baseline fusion beats).

    pixel_values -> image tower -> pooled (B, D_i) ┐
    input_ids    -> text tower  -> pool   (B, D_t) ┴ concat (B, D_i + D_t) -> dropout -> Linear -> GELU
                                                        -> dropout -> Linear -> logits (B, n_outputs)

With `clip:` instead of `image:` + `text:`, the features are a CLIP model's two embeddings (its image and
text towers and projections, formers.models.clip), frozen by default (`freeze_clip`), so a CLIP trained on
image-caption pairs serves as the feature extractor (load its weights with the vqa task's
`objective.pretrained`).

The two streams never see each other before the MLP, so a question about "the red circle" cannot steer
where the image tower looks: VQA papers report this baseline (Antol et al. 2015's "deeper LSTM Q + norm I",
concatenation instead of product) well below attention-based fusion on questions that name one object.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.models.heads import POOLING, Pooling, new_linear
from formers.models.output import ModelOutput
from formers.models.towers import image_tower_config
from formers.registry import build_model, model_config_from_dict, register_model

TEXT_FAMILIES = ("bert",)  # encoders with encode(input_ids, attention_mask) -> (B, T, D)


@dataclasses.dataclass(kw_only=True)
class LateFusionConfig(Config):
    family: Literal["late_fusion"] = "late_fusion"
    image: Any = None  # the image tower's config (vit or cnn); a mapping in recipes
    text: Any = None  # the text tower's config (bert); a mapping in recipes
    clip: Any = None  # instead of image + text: a CLIP config whose two embeddings are the features
    freeze_clip: bool = True  # CLIP as a fixed feature extractor (its weights get no gradient)
    n_outputs: int = 2
    hidden: int = 256  # the MLP's inner width
    text_pooling: Pooling = "mean"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.clip, dict):
            self.clip = model_config_from_dict(self.clip, where="LateFusionConfig.clip")
        if self.clip is not None:
            check(getattr(self.clip, "family", None) == "clip" and self.image is None and self.text is None,
                  "LateFusionConfig.clip", getattr(self.clip, "family", self.clip),
                  "a clip config, with image and text left null (CLIP brings both towers)")
        else:
            self.image = image_tower_config(self.image, "LateFusionConfig.image")
            check(self.image is not None, "LateFusionConfig.image", None,
                  "an image tower's config (vit or cnn), or a clip config in `clip`")
            if isinstance(self.text, dict):
                self.text = model_config_from_dict(self.text, where="LateFusionConfig.text")
            check(getattr(self.text, "family", None) in TEXT_FAMILIES, "LateFusionConfig.text",
                  getattr(self.text, "family", self.text), f"a model config of family {TEXT_FAMILIES}")
        check(self.n_outputs > 0, "LateFusionConfig.n_outputs", self.n_outputs, "a positive int")
        check(self.hidden > 0, "LateFusionConfig.hidden", self.hidden, "a positive int")
        check(0.0 <= self.dropout < 1.0, "LateFusionConfig.dropout", self.dropout, "a value in [0, 1)")


class TowerFeatures(nn.Module):
    """(input_ids, mask, pixels) -> (B, D_i + D_t): the image tower's pooled vector and the pooled text."""

    def __init__(self, config: LateFusionConfig) -> None:
        super().__init__()
        self.image_tower = build_model(config.image)
        self.text_tower = build_model(config.text)
        self.pool = POOLING[config.text_pooling]
        self.width = config.image.d_model + config.text.d_model

    def forward(self, input_ids, attention_mask, token_type_ids, pixel_values) -> torch.Tensor:
        text = self.text_tower.encode(input_ids, attention_mask, token_type_ids)  # (B, T, D_t)
        image = self.image_tower(pixel_values).pooled  # (B, D_i)
        return torch.cat([image, self.pool(text, attention_mask).to(image.dtype)], dim=-1)  # (B, D_i + D_t)


class ClipFeatures(nn.Module):
    """(input_ids, mask, pixels) -> (B, 2E): CLIP's unit-norm image and text embeddings side by side."""

    def __init__(self, config: LateFusionConfig) -> None:
        super().__init__()
        self.clip = build_model(config.clip)
        self.clip.requires_grad_(not config.freeze_clip)
        self.width = 2 * config.clip.embed_dim

    def forward(self, input_ids, attention_mask, token_type_ids, pixel_values) -> torch.Tensor:
        image = self.clip.encode_image(pixel_values)  # (B, E) fp32
        return torch.cat([image, self.clip.encode_text(input_ids, attention_mask)], dim=-1)  # (B, 2E)


@register_model("late_fusion", LateFusionConfig)
class LateFusion(nn.Module):
    def __init__(self, config: LateFusionConfig) -> None:
        super().__init__()
        self.config = config
        self.features = ClipFeatures(config) if config.clip is not None else TowerFeatures(config)
        self.mlp = nn.Sequential(nn.Dropout(config.dropout), new_linear(self.features.width, config.hidden),
                                 nn.GELU(), nn.Dropout(config.dropout), new_linear(config.hidden, config.n_outputs))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, pixel_values: torch.Tensor) -> ModelOutput:
        """logits (B, n_outputs); last_hidden_state the fused features as one token (B, 1, F)."""
        fused = self.features(input_ids, attention_mask, token_type_ids, pixel_values)  # (B, F)
        logits = self.mlp(fused.to(self.mlp[1].weight.dtype))
        return ModelOutput(logits=logits, last_hidden_state=fused[:, None])
