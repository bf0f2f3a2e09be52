"""ViT (`transformers` ViTModel, ViTForImageClassification) <-> formers ViT.

What each kind of folder holds, and how it maps:
  ViTModel                   bare keys ("embeddings.", "encoder.layer.N."), a tanh pooler unless it was
                             built with add_pooling_layer=False, a mask token when use_mask_token=True
                             -> ViTConfig(pooler="tanh" or "none", mask_token=..., n_classes=0)
  ViTForImageClassification  the same trunk under "vit.", no pooler, `classifier` on the final [CLS] state
                             -> ViTConfig(pooler="none", n_classes=num_labels)

The pooler and the mask token exist in transformers only by constructor argument, not in config.json,
so an exported bare model without a pooler loads with `ViTModel.from_pretrained(folder,
add_pooling_layer=False)`, one with a mask token with `use_mask_token=True`; the defaults otherwise
report the missing pooler / unexpected mask token.
"""

from __future__ import annotations

from typing import Any

import torch

from formers.errors import CheckpointError
from formers.interop.mapping import ACTIVATIONS_OUT, HFFamily, Rule, activation_from_hf, module, require
from formers.models.vit import ViTConfig


def square_side(hf: dict[str, Any], key: str, default: int) -> int:
    """transformers allows (height, width) pairs; formers' ViT is square."""
    value = hf.get(key, default)
    if isinstance(value, list | tuple):
        if len(value) != 2 or value[0] != value[1]:
            raise CheckpointError(f"config.json {key}={value!r}: formers' ViT reads square images and patches only")
        value = value[0]
    return value


def _has(state: dict[str, torch.Tensor], key: str) -> bool:
    return key in state or f"vit.{key}" in state


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> ViTConfig:
    if not hf.get("qkv_bias", True):
        raise CheckpointError("config.json qkv_bias=false has no formers counterpart (its attention projections "
                              "all have biases or none do)")
    d = hf.get("hidden_size", 768)
    pooler = "tanh" if _has(state, "pooler.dense.weight") else "none"
    if pooler == "tanh" and (hf.get("pooler_act", "tanh") != "tanh" or hf.get("pooler_output_size") not in (None, d)):
        raise CheckpointError(f"config.json pooler_act={hf.get('pooler_act')!r}, pooler_output_size="
                              f"{hf.get('pooler_output_size')!r}: formers' pooler is a tanh dense of width "
                              f"hidden_size={d}")
    return ViTConfig(
        image_size=square_side(hf, "image_size", 224), patch_size=square_side(hf, "patch_size", 16),
        n_channels=hf.get("num_channels", 3), d_model=d, n_heads=hf.get("num_attention_heads", 12),
        n_layers=hf.get("num_hidden_layers", 12), d_ff=hf.get("intermediate_size", 3072),
        activation=activation_from_hf(hf.get("hidden_act", "gelu"), "hidden_act"),
        norm_eps=hf.get("layer_norm_eps", 1e-12), dropout=hf.get("hidden_dropout_prob", 0.0),
        attn_dropout=hf.get("attention_probs_dropout_prob", 0.0), init_std=hf.get("initializer_range", 0.02),
        position="learned", pooling="cls", pooler=pooler, mask_token=_has(state, "embeddings.mask_token"),
        n_classes=state["classifier.weight"].shape[0] if "classifier.weight" in state else 0,
    )


def config_to_hf(c: ViTConfig) -> dict[str, Any]:
    require(c, "vit", position="learned", pooling="cls", norm="layernorm", norm_placement="pre", residual=True,
            bias=True, d_head=None, activation=tuple(ACTIVATIONS_OUT), attention_scale=None, patch_bias=True,
            embedding_norm=False, final_norm="tokens", patch_overlap=0, stem="patchify")
    if c.n_classes:  # ViTForImageClassification reads the [CLS] state directly and has no mask token
        require(c, "ViTForImageClassification", pooler="none", mask_token=False)
    labels = {"id2label": {str(i): f"LABEL_{i}" for i in range(c.n_classes)},
              "label2id": {f"LABEL_{i}": i for i in range(c.n_classes)}} if c.n_classes else {}
    return {
        "model_type": "vit", "architectures": ["ViTForImageClassification" if c.n_classes else "ViTModel"],
        "image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.n_channels,
        "hidden_size": c.d_model, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
        "intermediate_size": c.ff_dim, "hidden_act": ACTIVATIONS_OUT[c.activation], "layer_norm_eps": c.norm_eps,
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "initializer_range": c.init_std, "qkv_bias": True, "encoder_stride": c.patch_size,
        "pooler_act": "tanh", "pooler_output_size": c.d_model, **labels,
    }


def rules(c: ViTConfig) -> list[Rule]:
    p = "vit." if c.n_classes else ""  # a classifier's trunk sits under "vit."; a bare ViTModel's keys do not
    out = [
        *module("patches.projection", p + "embeddings.patch_embeddings.projection"),
        Rule("cls.token", (p + "embeddings.cls_token",)),
        Rule("positions.table", (p + "embeddings.position_embeddings",)),
    ]
    if c.mask_token:
        out.append(Rule("masking.token", (p + "embeddings.mask_token",)))
    for i in range(c.n_layers):
        ours, theirs = f"stack.blocks.{i}.", f"{p}encoder.layer.{i}."
        qkv = (theirs + f"attention.attention.{x}" for x in ("query", "key", "value"))
        out += module(ours + "attention.sublayer.qkv", *qkv)
        out += module(ours + "attention.sublayer.out", theirs + "attention.output.dense")
        out += module(ours + "attention.norm", theirs + "layernorm_before")
        out += module(ours + "feed_forward.sublayer.up", theirs + "intermediate.dense")
        out += module(ours + "feed_forward.sublayer.down", theirs + "output.dense")
        out += module(ours + "feed_forward.norm", theirs + "layernorm_after")
    out += module("stack.final_norm", p + "layernorm")
    if c.pooler == "tanh":
        out += module("pooler.dense", p + "pooler.dense")
    if c.n_classes:
        out += module("head", "classifier")
    return out


def ignored(c: ViTConfig) -> list[str]:
    return []


VIT = HFFamily("vit", "vit", "ViTForImageClassification", "vit.", config_from_hf, config_to_hf, rules, ignored)
