"""GPT-2 (`transformers` GPT2LMHeadModel) <-> formers GPT."""

from __future__ import annotations

from typing import Any

import torch

from formers.errors import CheckpointError
from formers.interop.mapping import (
    ACTIVATIONS_OUT,
    HFFamily,
    Rule,
    activation_from_hf,
    head_is_tied,
    module,
    require,
)
from formers.models.gpt import GPTConfig


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> GPTConfig:
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise CheckpointError(f"GPT-2 config {flag}=true has no formers counterpart")
    return GPTConfig(
        vocab_size=hf.get("vocab_size", 50257), max_seq_len=hf.get("n_positions", 1024), d_model=hf.get("n_embd", 768),
        n_heads=hf.get("n_head", 12), n_layers=hf.get("n_layer", 12), d_ff=hf.get("n_inner"),
        activation=activation_from_hf(hf.get("activation_function", "gelu_new"), "activation_function"),
        norm_eps=hf.get("layer_norm_epsilon", 1e-5), dropout=hf.get("resid_pdrop", 0.1),
        attn_dropout=hf.get("attn_pdrop", 0.1), init_std=hf.get("initializer_range", 0.02),
        attention_scale=None if hf.get("scale_attn_weights", True) else 1.0,
        position="learned", norm="layernorm", norm_placement="pre", bias=True,
        tie_weights=head_is_tied(state, "lm_head.weight", "transformer.wte.weight"),
    )


def config_to_hf(c: GPTConfig) -> dict[str, Any]:
    require(c, "gpt2", position="learned", norm="layernorm", norm_placement="pre", bias=True, d_head=None,
            causal=True, scale_embedding=False, activation=tuple(ACTIVATIONS_OUT), attention_scale=(None, 1.0))
    return {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
        "n_positions": c.max_seq_len, "n_embd": c.d_model, "n_head": c.n_heads, "n_layer": c.n_layers,
        "n_inner": c.d_ff, "activation_function": ACTIVATIONS_OUT[c.activation], "layer_norm_epsilon": c.norm_eps,
        "resid_pdrop": c.dropout, "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "initializer_range": c.init_std, "scale_attn_weights": c.attention_scale is None,
        "tie_word_embeddings": c.tie_weights, "bos_token_id": None, "eos_token_id": None,
    }


def rules(c: GPTConfig) -> list[Rule]:
    p = "transformer."
    out = [Rule("token_embedding.weight", (p + "wte.weight",)), Rule("positions.table.weight", (p + "wpe.weight",))]
    for i in range(c.n_layers):
        ours, theirs = f"stack.blocks.{i}.", f"{p}h.{i}."
        out += module(ours + "attention.norm", theirs + "ln_1")
        out += module(ours + "attention.sublayer.qkv", theirs + "attn.c_attn", layout="conv1d")  # already fused
        out += module(ours + "attention.sublayer.out", theirs + "attn.c_proj", layout="conv1d")
        out += module(ours + "feed_forward.norm", theirs + "ln_2")
        out += module(ours + "feed_forward.sublayer.up", theirs + "mlp.c_fc", layout="conv1d")
        out += module(ours + "feed_forward.sublayer.down", theirs + "mlp.c_proj", layout="conv1d")
    out += module("stack.final_norm", p + "ln_f")
    if not c.tie_weights:
        out.append(Rule("lm_head.weight", ("lm_head.weight",)))
    return out


def ignored(c: GPTConfig) -> list[str]:
    # causal-mask buffers of older checkpoints; the LM head when it is a copy of the embedding
    return [r"(transformer\.)?h\.\d+\.attn\.(masked_)?bias"] + (["lm_head.weight"] if c.tie_weights else [])


GPT2 = HFFamily("gpt2", "gpt", "GPT2LMHeadModel", "transformer.", config_from_hf, config_to_hf, rules, ignored)
