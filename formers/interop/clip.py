"""CLIP (`transformers` CLIPModel) <-> formers CLIP with a ViT image tower and a causal GPT text tower.

    vision_model  -> ViT(patch_bias=False, embedding_norm=True (pre_layrnorm), final_norm="pooled"
                         (post_layernorm on the [CLS] state), quick_gelu, learned positions)
    text_model    -> GPT(causal, learned positions, pre-norm, final_layer_norm; LM head tied and unused)
    visual_projection, text_projection -> image_projection, text_projection (no bias)
    logit_scale   -> logit_scale.log_scale (the log of the scale, in both)

Text pooling follows transformers 5: when text_config.eos_token_id is 2 (checkpoints older than
transformers PR #24773) the state at the highest token id is read ("argmax"), otherwise the state
at the first eos_token_id ("eos"). CLIPModel has attention dropout only: a formers model's residual
and embedding dropout (a training setting) is not written, and loads as 0. The scale's clamp at 100
is raised to a checkpoint's own scale when that is higher (OpenAI's trained CLIPs sit at
exp(4.6052) = 100.003), so outputs stay identical.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from formers.errors import ConfigError
from formers.interop.mapping import ACTIVATIONS_OUT, HFFamily, Rule, activation_from_hf, module, require
from formers.interop.vit import square_side
from formers.models.clip import CLIPConfig
from formers.models.gpt import GPTConfig
from formers.models.vit import ViTConfig

LEGACY_EOS = 2  # transformers' marker for "pool at the highest id" (see the module docstring)


def _layers(ours: str, theirs: str, n: int) -> list[Rule]:
    """CLIPEncoderLayer (layer_norm1 -> self_attn -> layer_norm2 -> mlp), the same in both towers."""
    out = []
    for i in range(n):
        o, t = f"{ours}stack.blocks.{i}.", f"{theirs}encoder.layers.{i}."
        out += module(o + "attention.sublayer.qkv", *(t + f"self_attn.{x}_proj" for x in "qkv"))
        out += module(o + "attention.sublayer.out", t + "self_attn.out_proj")
        out += module(o + "attention.norm", t + "layer_norm1")
        out += module(o + "feed_forward.sublayer.up", t + "mlp.fc1")
        out += module(o + "feed_forward.sublayer.down", t + "mlp.fc2")
        out += module(o + "feed_forward.norm", t + "layer_norm2")
    return out


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> CLIPConfig:
    t, v = hf.get("text_config") or {}, hf.get("vision_config") or {}
    text = GPTConfig(
        vocab_size=t.get("vocab_size", 49408), max_seq_len=t.get("max_position_embeddings", 77),
        d_model=t.get("hidden_size", 512), n_heads=t.get("num_attention_heads", 8),
        n_layers=t.get("num_hidden_layers", 12), d_ff=t.get("intermediate_size", 2048),
        activation=activation_from_hf(t.get("hidden_act", "quick_gelu"), "text_config.hidden_act"),
        norm_eps=t.get("layer_norm_eps", 1e-5), dropout=0.0,
        attn_dropout=t.get("attention_dropout", 0.0), init_std=t.get("initializer_range", 0.02),
        position="learned", causal=True, tie_weights=True,
    )
    image = ViTConfig(
        image_size=square_side(v, "image_size", 224), patch_size=square_side(v, "patch_size", 32),
        n_channels=v.get("num_channels", 3), d_model=v.get("hidden_size", 768),
        n_heads=v.get("num_attention_heads", 12), n_layers=v.get("num_hidden_layers", 12),
        d_ff=v.get("intermediate_size", 3072),
        activation=activation_from_hf(v.get("hidden_act", "quick_gelu"), "vision_config.hidden_act"),
        norm_eps=v.get("layer_norm_eps", 1e-5), dropout=0.0,
        attn_dropout=v.get("attention_dropout", 0.0), init_std=v.get("initializer_range", 0.02),
        position="learned", pooling="cls", pooler="none", patch_bias=False, embedding_norm=True,
        final_norm="pooled",
    )
    eos = t.get("eos_token_id", LEGACY_EOS)
    scale = math.exp(float(state["logit_scale"])) if "logit_scale" in state else 100.0
    return CLIPConfig(
        image=image, text=text, embed_dim=hf.get("projection_dim", 512),
        text_pooling="argmax" if eos == LEGACY_EOS else "eos", eos_token_id=None if eos == LEGACY_EOS else eos,
        logit_scale_init=math.exp(hf.get("logit_scale_init_value", math.log(1 / 0.07))),
        max_logit_scale=max(100.0, scale),
    )


def config_to_hf(c: CLIPConfig) -> dict[str, Any]:
    require(c, "clip", text_pooling=("eos", "argmax"))
    if c.text_pooling == "eos" and c.eos_token_id == LEGACY_EOS:
        raise ConfigError(f"no Hugging Face clip counterpart for CLIPConfig.eos_token_id={LEGACY_EOS} with "
                          "text_pooling='eos': transformers reads that id as the old rule 'pool at the highest id'; "
                          "give the end-of-text token another id")
    v, t = c.image, c.text
    require(v, "clip vision_model", family="vit")  # first: the fields below are a ViT's
    require(t, "clip text_model", family="gpt")
    require(v, "clip vision_model", position="learned", pooling="cls", pooler="none", n_classes=0,
            mask_token=False, patch_bias=False, embedding_norm=True, final_norm="pooled", norm="layernorm",
            norm_placement="pre", residual=True, bias=True, d_head=None, attention_scale=None,
            activation=tuple(ACTIVATIONS_OUT), patch_overlap=0, stem="patchify")
    require(t, "clip text_model", position="learned", causal=True, scale_embedding=False,
            norm="layernorm", norm_placement="pre", residual=True, bias=True, d_head=None, attention_scale=None,
            activation=tuple(ACTIVATIONS_OUT))
    eos = LEGACY_EOS if c.text_pooling == "argmax" else c.eos_token_id
    common = {"initializer_factor": 1.0, "projection_dim": c.embed_dim}
    return {
        "model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": c.embed_dim,
        "logit_scale_init_value": math.log(c.logit_scale_init), "initializer_factor": 1.0,
        "text_config": {
            "model_type": "clip_text_model", "vocab_size": t.vocab_size, "max_position_embeddings": t.max_seq_len,
            "hidden_size": t.d_model, "num_attention_heads": t.n_heads, "num_hidden_layers": t.n_layers,
            "intermediate_size": t.ff_dim, "hidden_act": ACTIVATIONS_OUT[t.activation], "layer_norm_eps": t.norm_eps,
            "attention_dropout": t.dropout if t.attn_dropout is None else t.attn_dropout,
            "initializer_range": t.init_std, "eos_token_id": eos, "bos_token_id": None, "pad_token_id": None,
            **common,
        },
        "vision_config": {
            "model_type": "clip_vision_model", "image_size": v.image_size, "patch_size": v.patch_size,
            "num_channels": v.n_channels, "hidden_size": v.d_model, "num_attention_heads": v.n_heads,
            "num_hidden_layers": v.n_layers, "intermediate_size": v.ff_dim,
            "hidden_act": ACTIVATIONS_OUT[v.activation], "layer_norm_eps": v.norm_eps,
            "attention_dropout": v.dropout if v.attn_dropout is None else v.attn_dropout,
            "initializer_range": v.init_std, **common,
        },
    }


def rules(c: CLIPConfig) -> list[Rule]:
    i, vm, tm = "image_tower.", "vision_model.", "text_model."
    return [
        Rule(i + "patches.projection.weight", (vm + "embeddings.patch_embedding.weight",)),
        Rule(i + "cls.token", (vm + "embeddings.class_embedding",), lead=2),  # (1, 1, D) vs (D,)
        Rule(i + "positions.table", (vm + "embeddings.position_embedding.weight",), lead=1),  # (1, 1 + N, D)
        *module(i + "embedding_norm", vm + "pre_layrnorm"),
        *_layers(i, vm, c.image.n_layers),
        *module(i + "pooler.norm", vm + "post_layernorm"),
        Rule("text_tower.token_embedding.weight", (tm + "embeddings.token_embedding.weight",)),
        Rule("text_tower.positions.table.weight", (tm + "embeddings.position_embedding.weight",)),
        *_layers("text_tower.", tm, c.text.n_layers),
        *module("text_tower.stack.final_norm", tm + "final_layer_norm"),
        Rule("image_projection.weight", ("visual_projection.weight",)),
        Rule("text_projection.weight", ("text_projection.weight",)),
        Rule("logit_scale.log_scale", ("logit_scale",)),
    ]


def ignored(c: CLIPConfig) -> list[str]:
    return [r"(text|vision)_model\.embeddings\.position_ids"]  # index buffers some checkpoints carry


CLIP = HFFamily("clip", "clip", "CLIPModel", "", config_from_hf, config_to_hf, rules, ignored)
