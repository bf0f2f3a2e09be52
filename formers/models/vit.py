"""ViT: the Transformer encoder reading an image as a sequence of patches.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale".

pixels (B, C, H, W) -> patch embedding (B, N, D) -> [mask token] -> [CLS] + positions [-> norm]
    -> N pre-norm blocks -> final norm -> last_hidden_state (B, [1 +] N, D)
    -> pool ([CLS] state or mean of patches) [-> tanh dense] -> pooled (B, D) -> classifier -> logits

CLIP's vision tower (Radford et al. 2021) is the same with a bias-free patch conv, a norm on the
embeddings, and the final norm applied to the pooled [CLS] state instead of every token
(`patch_bias: false, embedding_norm: true, final_norm: pooled`, quick_gelu).

Every choice (positions, [CLS] or mean pooling, pooler, mask token, head, where the norms sit) is a
module picked when the model is built; `forward` runs whatever was built.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import check
from formers.models.bert import Pooler
from formers.models.gpt import init_weights
from formers.models.heads import POOLING, Pooling
from formers.models.output import VisionOutput
from formers.nn import BlockConfig, make_norm, make_stack
from formers.nn.patches import (
    ClassToken,
    ConvStem,
    LearnedPatchPositions,
    MaskToken,
    NoClassToken,
    NoMaskToken,
    PatchEmbedding,
    SinCos2dPositions,
    check_pixels,
)

PatchPosition = Literal["learned", "sincos2d"]


@dataclasses.dataclass(kw_only=True)
class ViTConfig(BlockConfig):
    family: Literal["vit"] = "vit"
    image_size: int = 32  # side of the square images trained on; other sizes need interpolate_pos_encoding=True
    patch_size: int = 4  # side of a patch: (image_size / patch_size)^2 tokens (ViT-B/16 uses 16 on 224)
    patch_overlap: int = 0  # m > 0: each patch reads m more pixels on every side (PVT v2; see PatchEmbedding)
    stem: Literal["patchify", "conv"] = "patchify"  # "conv": Xiao et al. 2021's stem of 3x3 convs (see ConvStem)
    n_channels: int = 3
    n_layers: int = 4
    position: PatchPosition = "learned"  # "sincos2d": fixed, any grid (Beyer et al. 2022 find it as good)
    pooling: Pooling = "cls"  # "cls": prepend a [CLS] token, pool its final state; "mean": no [CLS], mean of patches
    pooler: Literal["none", "tanh"] = "none"  # "tanh": pooled = tanh(dense(h_[CLS])), HF ViTModel's pooler_output
    mask_token: bool = False  # a learned vector for masked patches (forward's bool_masked_pos)
    # CLIP's vision Transformer (Radford et al. 2021, section 2.4: "an additional layer normalization to the
    # combined patch and position embeddings before the transformer"): a bias-free patch conv, a norm on the
    # embeddings, and its final norm on the pooled [CLS] only (last_hidden_state stays unnormalised)
    patch_bias: bool = True
    embedding_norm: bool = False  # a norm on patches + positions before the blocks (CLIP's ln_pre)
    final_norm: Literal["tokens", "pooled"] = "tokens"  # "pooled": the stack's final norm moves onto `pooled`
    n_classes: int = 0  # a linear classifier on `pooled`; 0 = no head (logits None)
    norm_eps: float = 1e-6  # the ViT paper's JAX code and timm; Hugging Face uses 1e-12 (interop reads theirs)
    dropout: float = 0.0  # ViT pretrains large data without it; small data benefits from ~0.1
    init_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("image_size", "patch_size", "n_channels", "n_layers"):
            check(getattr(self, name) > 0, f"ViTConfig.{name}", getattr(self, name), "a positive int")
        check(0 <= self.patch_overlap < self.patch_size, "ViTConfig.patch_overlap", self.patch_overlap,
              f"an int in [0, patch_size={self.patch_size})")
        check(self.image_size % self.patch_size == 0, "ViTConfig.patch_size", self.patch_size,
              f"a divisor of image_size={self.image_size}")
        if self.stem == "conv":
            check(self.patch_size >= 2 and self.patch_size & (self.patch_size - 1) == 0, "ViTConfig.patch_size",
                  self.patch_size, "a power of two >= 2 with stem='conv' (each stride-2 conv halves the image)")
            check(self.patch_overlap == 0 and self.patch_bias, "ViTConfig.stem", self.stem,
                  "'patchify' when patch_overlap or patch_bias are set (they shape the patchify conv)")
            check(self.d_model % (self.patch_size // 2) == 0, "ViTConfig.d_model", self.d_model,
                  f"a multiple of {self.patch_size // 2} with stem='conv' (the stem's widths halve from d_model)")
        check(self.n_classes >= 0, "ViTConfig.n_classes", self.n_classes, "0 (no head) or a positive int")
        check(self.pooler == "none" or self.pooling == "cls", "ViTConfig.pooler", self.pooler,
              "'none' with pooling='mean' (the tanh pooler reads the [CLS] token)")
        check(self.final_norm == "tokens" or (self.pooler == "none" and self.norm_placement == "pre"),
              "ViTConfig.final_norm", self.final_norm, "'tokens' unless pooler='none' and norm_placement='pre' "
              "(CLIP's layout: a pre-norm stack whose last norm reads the pooled vector)")
        check(self.position != "sincos2d" or self.d_model % 4 == 0, "ViTConfig.d_model", self.d_model,
              "a multiple of 4 with position='sincos2d' (sin and cos of rows and of columns)")

    @property
    def grid(self) -> int:
        """Patches per side at image_size."""
        return self.image_size // self.patch_size


class TokenPool(nn.Module):
    """The [CLS] state or the mean of all tokens, (B, N, D) -> (B, D); no parameters."""

    def __init__(self, kind: Pooling) -> None:
        super().__init__()
        self.pool = POOLING[kind]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.pool(hidden, None)


def vit_norm(config: ViTConfig) -> nn.Module:
    return make_norm(config.norm, config.d_model, config.norm_eps, config.bias)


class NormedPool(nn.Module):
    """norm(pool(hidden)): CLIP's ln_post on the [CLS] state, in place of a norm over every token."""

    def __init__(self, pool: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.pool, self.norm = pool, norm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.pool(hidden))


def make_pooler(config: ViTConfig) -> nn.Module:
    """"tanh" is BERT's pooler (a dense + tanh on [CLS]), which Hugging Face's ViTModel keeps."""
    if config.pooler == "tanh":
        return Pooler(config.d_model)
    if config.final_norm == "pooled":
        return NormedPool(TokenPool(config.pooling), vit_norm(config))
    return TokenPool(config.pooling)


class ViT(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        if config.stem == "conv":
            self.patches = ConvStem(config.n_channels, d, config.patch_size)
        else:
            self.patches = PatchEmbedding(config.n_channels, d, config.patch_size, bias=config.patch_bias,
                                          overlap=config.patch_overlap)
        self.masking = MaskToken(d) if config.mask_token else NoMaskToken()
        self.cls = ClassToken(d, config.init_std) if config.pooling == "cls" else NoClassToken()
        if config.position == "learned":
            self.positions = LearnedPatchPositions(config.grid, d, self.cls.n_prefix, config.init_std)
        else:
            self.positions = SinCos2dPositions(d, self.cls.n_prefix)
        self.embedding_norm = vit_norm(config) if config.embedding_norm else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)
        self.stack = make_stack(config, config.n_layers, causal=False)
        if config.final_norm == "pooled":
            self.stack.final_norm = nn.Identity()  # the pooler normalises the pooled vector instead
        self.pooler = make_pooler(config)
        self.head = nn.Linear(d, config.n_classes) if config.n_classes else None
        init_weights(self, config.init_std, config.n_layers)
        if self.head is not None:  # a zero head starts at the uniform guess (the ViT paper's fine-tuning init)
            nn.init.zeros_(self.head.weight)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> VisionOutput:
        """pixel_values (B, C, H, W) float; bool_masked_pos (B, N) True = masked patch (needs mask_token).

        Images must be image_size x image_size unless `interpolate_pos_encoding` (then any multiple of
        patch_size: learned positions are resized bicubically, sin-cos ones computed for the new grid)."""
        c = self.config
        h, w = check_pixels(pixel_values, c.n_channels, multiple_of=c.patch_size,
                            size=None if interpolate_pos_encoding else c.image_size)
        x = self.masking(self.patches(pixel_values), bool_masked_pos)  # (B, N, D)
        x = self.cls(x)  # (B, [1 +] N, D)
        x = x + self.positions(h // c.patch_size, w // c.patch_size).to(x.dtype)
        hidden = self.stack(self.dropout(self.embedding_norm(x)))
        pooled = self.pooler(hidden)  # (B, D)
        logits = self.head(pooled) if self.head is not None else None
        return VisionOutput(last_hidden_state=hidden, pooled=pooled, logits=logits)
