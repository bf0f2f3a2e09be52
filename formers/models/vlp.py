"""A vision-language pretraining model (ALBEF / BLIP style) around a single-stream VisualBERT trunk.

Li et al. 2021, "Align before Fuse: Vision and Language Representation Learning with Momentum
Distillation" (ALBEF); Li et al. 2022, "BLIP". One model serves the three pretraining losses of
formers.objectives.matching:

    ITC  image_embeds = normalize(W_i · tower pooled),  text_embeds = normalize(W_t · h_[CLS] of the text
         alone through the trunk); similarity (B, B) = scale · image_embeds @ text_embeds.T
    ITM  the fused [CLS] (text + visual tokens through the trunk) -> itm_head -> logits (B, 2): match or not
    MLM  the trunk's MLM head over the text positions of the fused sequence
    MIM  patch_head: the fused states of masked visual tokens -> the tower features they replaced

ALBEF keeps a separate text encoder for ITC and fusion layers above it; here the unimodal text pass runs
through the same stack with no visual tokens (a modality is an input, not a stack), so ITC, ITM and MLM
train one set of blocks. The image tower runs once per batch: `image_tokens` returns its tokens and pooled
vector, and the fused passes read the tokens as `visual_embeds`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check
from formers.models.heads import new_linear
from formers.models.output import VisionOutput
from formers.models.visualbert import VisualBertConfig, VisualBertOutput
from formers.registry import build_model, model_config_from_dict, register_model


@dataclasses.dataclass(kw_only=True)
class VLPConfig(Config):
    family: Literal["vlp"] = "vlp"
    trunk: Any  # a VisualBERT config with an image tower (a mapping in recipes)
    embed_dim: int = 128  # width of the shared ITC space
    logit_scale_init: float = 1 / 0.07  # CLIP's and ALBEF's initial temperature 0.07
    max_logit_scale: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.trunk, dict):
            self.trunk = model_config_from_dict(self.trunk, where="VLPConfig.trunk")
        check(isinstance(self.trunk, VisualBertConfig) and self.trunk.image is not None, "VLPConfig.trunk",
              getattr(self.trunk, "family", self.trunk), "a visualbert config with an image tower (image: ...)")
        check(self.embed_dim > 0, "VLPConfig.embed_dim", self.embed_dim, "a positive int")
        check(0 < self.logit_scale_init <= self.max_logit_scale, "VLPConfig.logit_scale_init",
              self.logit_scale_init, f"a value in (0, max_logit_scale={self.max_logit_scale}]")

    @property
    def d_model(self) -> int:
        return self.trunk.d_model


@register_model("vlp", VLPConfig)
class VLP(nn.Module):
    def __init__(self, config: VLPConfig) -> None:
        super().__init__()
        self.config = config
        self.trunk = build_model(config.trunk)
        d, d_image = config.trunk.d_model, config.trunk.visual_width
        self.image_projection = new_linear(d_image, config.embed_dim)
        self.text_projection = new_linear(d, config.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init)))
        self.itm_head = new_linear(d, 2)
        self.patch_head = new_linear(d, d_image)

    @property
    def tower(self) -> nn.Module:
        return self.trunk.visual_tokens.tower

    def image_tokens(self, pixel_values: torch.Tensor) -> VisionOutput:
        return self.tower(pixel_values)

    def image_embeds(self, image: VisionOutput) -> torch.Tensor:
        return F.normalize(self.image_projection(image.pooled).float(), dim=-1)  # (B, E)

    def text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The text alone through the trunk (no visual tokens), its [CLS] projected: (B, E) unit norm."""
        hidden = self.trunk.encode_text(input_ids, attention_mask)  # (B, T, D)
        return F.normalize(self.text_projection(hidden[:, 0]).float(), dim=-1)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """(B_i, B_t) scaled cosines, fp32 (bf16 would blur logits near scale 100 by ~0.4)."""
        scale = self.log_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()
        with torch.autocast(image_embeds.device.type, enabled=False):
            return scale * image_embeds.float() @ text_embeds.float().T

    def fuse(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
             visual_tokens: torch.Tensor) -> VisualBertOutput:
        """Text + the tower's visual tokens through the trunk (pooled, MLM logits, states)."""
        return self.trunk(input_ids, attention_mask, visual_embeds=visual_tokens)

    def match_logits(self, fused: VisualBertOutput) -> torch.Tensor:
        return self.itm_head(fused.last_hidden_state[:, 0])  # (B, 2) from the fused [CLS]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, pixel_values: torch.Tensor) -> VisualBertOutput:
        """The fused pass with its ITM logits as `nsp_logits`' sibling: logits = MLM (B, T, V),
        itm in `nsp_logits` (B, 2) (the sentence-pair head slot: does this text go with this image?)."""
        fused = self.fuse(input_ids, attention_mask, self.image_tokens(pixel_values).last_hidden_state)
        return dataclasses.replace(fused, nsp_logits=self.match_logits(fused))
