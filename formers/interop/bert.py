"""BERT (`transformers` BertForPreTraining, or a bare BertModel such as MiniLM) <-> formers Bert.

A bare BertModel checkpoint has no MLM/NSP heads (and may lack the pooler): those load as
optional, keeping their initial values, which is what sentence encoders need.
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
from formers.models.bert import BertConfig


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> BertConfig:
    if hf.get("position_embedding_type", "absolute") != "absolute" or hf.get("is_decoder"):
        raise CheckpointError("only encoder BERT checkpoints with absolute positions are supported; this config has "
                              f"position_embedding_type={hf.get('position_embedding_type')!r}, "
                              f"is_decoder={hf.get('is_decoder')!r}")
    return BertConfig(
        vocab_size=hf.get("vocab_size", 30522), max_seq_len=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2), d_model=hf.get("hidden_size", 768),
        n_heads=hf.get("num_attention_heads", 12), n_layers=hf.get("num_hidden_layers", 12),
        d_ff=hf.get("intermediate_size", 3072),
        activation=activation_from_hf(hf.get("hidden_act", "gelu"), "hidden_act"),
        norm_eps=hf.get("layer_norm_eps", 1e-12), dropout=hf.get("hidden_dropout_prob", 0.1),
        attn_dropout=hf.get("attention_probs_dropout_prob", 0.1), init_std=hf.get("initializer_range", 0.02),
        tie_weights=head_is_tied(state, "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"),
    )


def config_to_hf(c: BertConfig) -> dict[str, Any]:
    require(c, "bert", position="learned", norm="layernorm", norm_placement="post", bias=True, d_head=None,
            activation=tuple(ACTIVATIONS_OUT), attention_scale=None)
    return {
        "model_type": "bert", "architectures": ["BertForPreTraining"], "vocab_size": c.vocab_size,
        "max_position_embeddings": c.max_seq_len, "type_vocab_size": c.type_vocab_size, "hidden_size": c.d_model,
        "num_attention_heads": c.n_heads, "num_hidden_layers": c.n_layers, "intermediate_size": c.ff_dim,
        "hidden_act": ACTIVATIONS_OUT[c.activation], "layer_norm_eps": c.norm_eps,
        "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout if c.attn_dropout is None else c.attn_dropout,
        "initializer_range": c.init_std, "tie_word_embeddings": c.tie_weights, "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }


def rules(c: BertConfig) -> list[Rule]:
    p = "bert."
    out = [
        Rule("token_embedding.weight", (p + "embeddings.word_embeddings.weight",)),
        Rule("positions.table.weight", (p + "embeddings.position_embeddings.weight",)),
        Rule("segment_embedding.weight", (p + "embeddings.token_type_embeddings.weight",)),
        *module("embedding_norm", p + "embeddings.LayerNorm"),
    ]
    for i in range(c.n_layers):
        ours, theirs = f"stack.blocks.{i}.", f"{p}encoder.layer.{i}."
        qkv = (theirs + f"attention.self.{x}" for x in ("query", "key", "value"))
        out += module(ours + "attention.sublayer.qkv", *qkv)
        out += module(ours + "attention.sublayer.out", theirs + "attention.output.dense")
        out += module(ours + "attention.norm", theirs + "attention.output.LayerNorm")
        out += module(ours + "feed_forward.sublayer.up", theirs + "intermediate.dense")
        out += module(ours + "feed_forward.sublayer.down", theirs + "output.dense")
        out += module(ours + "feed_forward.norm", theirs + "output.LayerNorm")
    out += module("pooler.dense", p + "pooler.dense", optional=True)
    out += module("mlm_head.dense", "cls.predictions.transform.dense", optional=True)
    out += module("mlm_head.norm", "cls.predictions.transform.LayerNorm", optional=True)
    out.append(Rule("mlm_head.decoder.bias", ("cls.predictions.bias",), optional=True))
    if not c.tie_weights:  # transformers then unties the decoder's bias too, and its forward uses that one
        out.append(Rule("mlm_head.decoder.weight", ("cls.predictions.decoder.weight",), optional=True))
        # a second rule for the bias: export writes both names; on import the later rule wins
        out.append(Rule("mlm_head.decoder.bias", ("cls.predictions.decoder.bias",), optional=True))
    out += module("nsp_head", "cls.seq_relationship", optional=True)
    return out


def ignored(c: BertConfig) -> list[str]:
    # a position-id buffer of older checkpoints; the decoder's copies of the tied embedding and of predictions.bias
    return [r"(bert\.)?embeddings\.position_ids"] + (
        [r"cls\.predictions\.decoder\.weight", r"cls\.predictions\.decoder\.bias"] if c.tie_weights else [])


BERT = HFFamily("bert", "bert", "BertForPreTraining", "bert.", config_from_hf, config_to_hf, rules, ignored)
