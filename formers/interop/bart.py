"""BART (`transformers` BartForConditionalGeneration) <-> formers EncoderDecoder with BartConfig.

BART's learned position tables keep two unused rows at the start (fairseq's offset), which
our `OffsetLearnedPositions` keeps too, so the tables convert unchanged; final_logits_bias
is our LM head's bias.
"""

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
from formers.models.encoder_decoder import BartConfig


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> BartConfig:
    for ours, (enc, dec) in {"n_heads": ("encoder_attention_heads", "decoder_attention_heads"),
                             "d_ff": ("encoder_ffn_dim", "decoder_ffn_dim")}.items():
        if hf.get(enc) != hf.get(dec):
            raise CheckpointError(f"config.json {enc}={hf.get(enc)} differs from {dec}={hf.get(dec)}; formers "
                                  f"builds both stacks with one {ours}")
    for flag in ("normalize_before", "add_final_layer_norm"):  # mBART-style pre-norm layouts
        if hf.get(flag):
            raise CheckpointError(f"config.json {flag}=true (an mBART layout) is not supported")
    return BartConfig(
        vocab_size=hf.get("vocab_size", 50265), d_model=hf.get("d_model", 1024),
        n_heads=hf.get("encoder_attention_heads", 16), d_ff=hf.get("encoder_ffn_dim", 4096),
        n_layers=hf.get("encoder_layers", 12), n_decoder_layers=hf.get("decoder_layers", 12),
        activation=activation_from_hf(hf.get("activation_function", "gelu"), "activation_function"),
        max_seq_len=hf.get("max_position_embeddings", 1024), dropout=hf.get("dropout", 0.1),
        attn_dropout=hf.get("attention_dropout", 0.0), init_std=hf.get("init_std", 0.02),
        scale_embedding=bool(hf.get("scale_embedding", False)), pad_token_id=hf.get("pad_token_id", 1),
        eos_token_id=hf.get("eos_token_id", 2), decoder_start_token_id=hf.get("decoder_start_token_id", 2),
        tie_weights=head_is_tied(state, "lm_head.weight", "model.shared.weight"),
    )


def config_to_hf(c: BartConfig) -> dict[str, Any]:
    require(c, "bart", position="learned", position_offset=2, norm="layernorm", norm_placement="post", bias=True,
            d_head=None, attention_scale=None, embedding_norm=True, lm_head_bias=True, scale_decoder_output=False,
            activation=tuple(ACTIVATIONS_OUT))
    return {
        "model_type": "bart", "architectures": ["BartForConditionalGeneration"], "vocab_size": c.vocab_size,
        "d_model": c.d_model, "encoder_layers": c.n_layers, "decoder_layers": c.decoder_layers,
        "encoder_attention_heads": c.n_heads, "decoder_attention_heads": c.n_heads, "encoder_ffn_dim": c.ff_dim,
        "decoder_ffn_dim": c.ff_dim, "activation_function": ACTIVATIONS_OUT[c.activation],
        "max_position_embeddings": c.max_seq_len, "dropout": c.dropout,
        "attention_dropout": c.dropout if c.attn_dropout is None else c.attn_dropout, "activation_dropout": 0.0,
        "init_std": c.init_std, "scale_embedding": c.scale_embedding, "pad_token_id": c.pad_token_id,
        "eos_token_id": c.eos_token_id, "decoder_start_token_id": c.decoder_start_token_id,
        "tie_word_embeddings": c.tie_weights, "is_encoder_decoder": True,
    }


def rules(c: BartConfig) -> list[Rule]:
    p = "model."
    out = [Rule("token_embedding.weight", (p + "shared.weight",))]
    for side, n in (("encoder", c.n_layers), ("decoder", c.decoder_layers)):
        out.append(Rule(f"{side}_positions.learned.table.weight", (f"{p}{side}.embed_positions.weight",)))
        out += module(f"{side}_embedding_norm", f"{p}{side}.layernorm_embedding")
        for i in range(n):
            ours, theirs = f"{side}.blocks.{i}.", f"{p}{side}.layers.{i}."
            attn = theirs + "self_attn."
            out += module(ours + "attention.sublayer.qkv", attn + "q_proj", attn + "k_proj", attn + "v_proj")
            out += module(ours + "attention.sublayer.out", attn + "out_proj")
            out += module(ours + "attention.norm", theirs + "self_attn_layer_norm")
            if side == "decoder":
                cross = theirs + "encoder_attn."
                out += module(ours + "cross_attention.sublayer.q", cross + "q_proj")
                out += module(ours + "cross_attention.sublayer.kv", cross + "k_proj", cross + "v_proj")
                out += module(ours + "cross_attention.sublayer.out", cross + "out_proj")
                out += module(ours + "cross_attention.norm", theirs + "encoder_attn_layer_norm")
            out += module(ours + "feed_forward.sublayer.up", theirs + "fc1")
            out += module(ours + "feed_forward.sublayer.down", theirs + "fc2")
            out += module(ours + "feed_forward.norm", theirs + "final_layer_norm")
    out.append(Rule("lm_head.bias", ("final_logits_bias",), layout="row", optional=True))  # absent in a BartModel
    if not c.tie_weights:
        out.append(Rule("lm_head.weight", ("lm_head.weight",)))
    return out


def ignored(c: BartConfig) -> list[str]:
    return [r"(model\.)?(encoder|decoder)\.embed_tokens\.weight"] + (["lm_head.weight"] if c.tie_weights else [])


def copies(c: BartConfig) -> list[tuple[str, str]]:
    return [(f"model.{side}.embed_tokens.weight", "model.shared.weight") for side in ("encoder", "decoder")]


BART = HFFamily("bart", "bart", "BartForConditionalGeneration", "model.", config_from_hf, config_to_hf, rules, ignored,
                copies)
