"""CLIP: a dual encoder mapping images and texts into one space (Radford et al. 2021).

    pixel_values (B, C, H, W) -> image tower -> pooled (B, D_i) -> linear -> L2-normalise -> image_embeds (B, E)
    input_ids (B, T)          -> text tower  -> pool    (B, D_t) -> linear -> L2-normalise -> text_embeds  (B, E)
    logits_per_image (B_i, B_t) = scale * image_embeds @ text_embeds.T,  logits_per_text its transpose

The towers are ordinary formers models built through the registry from nested configs: any image
family returning a `VisionOutput` (ViT, the CNN), and a text trunk with `encode` (GPT with
`causal: true` is CLIP's own text Transformer: token + learned positions, pre-norm causal blocks,
final norm; BERT gives a bidirectional tower, e.g. the pretrained MiniLM for locked-text tuning).
How the text tower's states become one vector is a pooling module picked when the model is built:

    last    the last real token (by attention_mask): the end-of-text token our tokenizers append
    eos     the first occurrence of eos_token_id (Hugging Face CLIP when eos_token_id != 2)
    argmax  the position of the highest id (original CLIP: its end-of-text token has the top id)
    mean    mean over real tokens (sentence-transformers)
    cls     the first token (BERT's [CLS]; refused for causal towers, whose first token sees nothing else)

The temperature is a `LogitScale` (learned, init 1/0.07, clamped at 100); the loss lives in
`formers.objectives.contrastive`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config, check
from formers.errors import DataError
from formers.models.heads import cls_pool, mean_pool
from formers.nn.logit_scale import LogitScale
from formers.registry import build_model, model_config_from_dict, register_model

TextPooling = Literal["last", "eos", "argmax", "mean", "cls"]
IMAGE_FAMILIES = ("vit", "cnn")  # families whose forward(pixel_values) returns a VisionOutput
TEXT_FAMILIES = ("gpt", "bert")  # families whose encode(input_ids, attention_mask) returns (B, T, D)


def tower_config(value: Any, where: str, families: tuple[str, ...]) -> Config:
    """A tower's config from plain data (a recipe's nested mapping, with its family) or a config object."""
    config = model_config_from_dict(value, where=where) if isinstance(value, dict) else value
    check(isinstance(config, Config) and getattr(config, "family", None) in families, where,
          getattr(config, "family", value), f"a model config of family {' or '.join(families)}")
    return config


@dataclasses.dataclass(kw_only=True)
class CLIPConfig(Config):
    family: Literal["clip"] = "clip"
    image: Any  # the image tower's config (family vit or cnn); a mapping in recipes
    text: Any  # the text tower's config (family gpt, built causal, or bert); a mapping in recipes
    embed_dim: int = 128  # width of the shared space both towers project into
    text_pooling: TextPooling = "last"
    eos_token_id: int | None = None  # the token text_pooling="eos" reads
    logit_scale_init: float = 1 / 0.07  # CLIP's initial temperature 0.07 (after Wu et al. 2018)
    max_logit_scale: float = 100.0  # CLIP clips the scale here "to prevent training instability"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.image = tower_config(self.image, "CLIPConfig.image", IMAGE_FAMILIES)
        self.text = tower_config(self.text, "CLIPConfig.text", TEXT_FAMILIES)
        check(self.embed_dim > 0, "CLIPConfig.embed_dim", self.embed_dim, "a positive int")
        check(self.text_pooling != "eos" or self.eos_token_id is not None, "CLIPConfig.eos_token_id",
              self.eos_token_id, "the end-of-text token id when text_pooling='eos'")
        causal = getattr(self.text, "causal", False)
        check(not (causal and self.text_pooling == "cls"), "CLIPConfig.text_pooling", self.text_pooling,
              "last, eos, argmax or mean for a causal text tower (its first token sees only itself)")
        check(getattr(self.text, "tie_weights", True), "CLIPConfig.text.tie_weights", False,
              "true: a text tower never uses its LM head, tied it adds no parameters")
        check(0 < self.logit_scale_init <= self.max_logit_scale, "CLIPConfig.logit_scale_init",
              self.logit_scale_init, f"a value in (0, max_logit_scale={self.max_logit_scale}]")


@dataclasses.dataclass
class CLIPOutput:
    logits_per_image: torch.Tensor  # (B_i, B_t) scaled cosine similarities, fp32
    logits_per_text: torch.Tensor  # (B_t, B_i)
    image_embeds: torch.Tensor  # (B_i, E) unit norm
    text_embeds: torch.Tensor  # (B_t, E) unit norm
    logit_scale: torch.Tensor  # () the multiplier in use, 1 / temperature


class LastTokenPool(nn.Module):
    """The last real token's state: with right or left padding, the last 1 of attention_mask."""

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        t = hidden.shape[1]
        if attention_mask is None:
            return hidden[:, -1]
        last = t - 1 - attention_mask.flip(1).argmax(1)  # (B,) index of the last 1
        return hidden[torch.arange(len(hidden), device=hidden.device), last]  # (B, D)


class EosPool(nn.Module):
    """The state at the first end-of-text token; a row without one is refused (it would silently read token 0)."""

    def __init__(self, eos_token_id: int) -> None:
        super().__init__()
        self.eos_token_id = eos_token_id

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        is_eos = input_ids == self.eos_token_id  # (B, T)
        if not torch.compiler.is_compiling() and not bool(is_eos.any(1).all()):
            rows = (~is_eos.any(1)).nonzero().flatten()[:5].tolist()
            raise DataError(f"text rows {rows} hold no end-of-text token {self.eos_token_id}, where this model "
                            "pools; append it to every text (the tokenizer's EOS)")
        return hidden[torch.arange(len(hidden), device=hidden.device), is_eos.int().argmax(1)]  # (B, D)


class ArgmaxPool(nn.Module):
    """The state at the highest token id of each row (original CLIP's end-of-text token has the top id)."""

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        return hidden[torch.arange(len(hidden), device=hidden.device), input_ids.int().argmax(1)]  # (B, D)


class MaskPool(nn.Module):
    """Mean over real tokens, or the first token: the pooling functions task heads use."""

    def __init__(self, kind: Literal["mean", "cls"]) -> None:
        super().__init__()
        self.pool = mean_pool if kind == "mean" else cls_pool

    def forward(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None):
        return self.pool(hidden, attention_mask)


def make_text_pool(config: CLIPConfig) -> nn.Module:
    if config.text_pooling == "last":
        return LastTokenPool()
    if config.text_pooling == "eos":
        return EosPool(config.eos_token_id)
    if config.text_pooling == "argmax":
        return ArgmaxPool()
    return MaskPool(config.text_pooling)


class TextReader:
    """The text tower and its pooling as one function, (input_ids, attention_mask) -> (B, D_t): the unit a
    locked tower's cache memoises (formers.adapt.lit). Not a module: it holds the model's own modules."""

    def __init__(self, tower: nn.Module, pool: nn.Module) -> None:
        self.tower, self.pool = tower, pool

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.pool(self.tower.encode(input_ids, attention_mask), input_ids, attention_mask)  # (B, D_t)


def projection(d_in: int, d_out: int) -> nn.Linear:
    """A bias-free map into the shared space, N(0, d_in^-1/2) as CLIP initialises it."""
    layer = nn.Linear(d_in, d_out, bias=False)
    nn.init.normal_(layer.weight, std=d_in**-0.5)
    return layer


@register_model("clip", CLIPConfig)
class CLIP(nn.Module):
    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.image_tower = build_model(config.image)
        self.text_tower = build_model(config.text)
        self.text_pool = make_text_pool(config)
        self.read_text = TextReader(self.text_tower, self.text_pool)
        self.image_projection = projection(config.image.d_model, config.embed_dim)
        self.text_projection = projection(config.text.d_model, config.embed_dim)
        self.logit_scale = LogitScale(config.logit_scale_init, config.max_logit_scale)

    def image_features(self, pixel_values: torch.Tensor, **image_kw) -> torch.Tensor:
        """Projected, not yet normalised: (B, E). `image_kw` go to the image tower (a ViT reads other image
        sizes with interpolate_pos_encoding=True)."""
        return self.image_projection(self.image_tower(pixel_values, **image_kw).pooled)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, not yet normalised: (B, E)."""
        return self.text_projection(self.read_text(input_ids, attention_mask))

    def encode_image(self, pixel_values: torch.Tensor, **image_kw) -> torch.Tensor:
        """pixel_values (B, C, H, W) -> unit-norm embeddings (B, E), fp32."""
        return F.normalize(self.image_features(pixel_values, **image_kw).float(), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T), attention_mask (B, T) 1 = real token -> unit-norm embeddings (B, E), fp32."""
        return F.normalize(self.text_features(input_ids, attention_mask).float(), dim=-1)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """(B_i, B_t) scaled cosines, in fp32 even under autocast: at a scale near 100, bf16's 8 bits of
        mantissa would blur logits by ~0.4, as much as the gaps the loss is trying to open."""
        with torch.autocast(image_embeds.device.type, enabled=False):
            return self.logit_scale(image_embeds.float() @ text_embeds.float().T)

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        **image_kw,
    ) -> CLIPOutput:
        image_embeds = self.encode_image(pixel_values, **image_kw)  # (B_i, E)
        text_embeds = self.encode_text(input_ids, attention_mask)  # (B_t, E)
        logits_per_image = self.similarity(image_embeds, text_embeds)  # (B_i, B_t)
        return CLIPOutput(logits_per_image=logits_per_image, logits_per_text=logits_per_image.T,
                          image_embeds=image_embeds, text_embeds=text_embeds,
                          logit_scale=self.logit_scale.scale())
