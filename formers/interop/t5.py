"""T5 v1.0 and v1.1 (`transformers` T5ForConditionalGeneration) <-> formers EncoderDecoder with T5Config.

v1.0 ties the LM head to the embedding and rescales the decoder output by d_model**-0.5;
v1.1 unties it, drops the rescale and uses a gated-GELU feed-forward. transformers 5 writes
`scale_decoder_outputs` explicitly; older configs imply it by `tie_word_embeddings`.
"""

from __future__ import annotations

from typing import Any

import torch

from formers.errors import CheckpointError
from formers.interop.mapping import HFFamily, Rule, head_is_tied, module, require
from formers.models.encoder_decoder import T5Config
from formers.nn.feedforward import GATED

FEED_FORWARD_IN = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gated-gelu": "geglu",
                   "gated-silu": "swiglu", "gated-relu": "reglu"}
FEED_FORWARD_OUT = {ours: theirs for theirs, ours in FEED_FORWARD_IN.items()}


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> T5Config:
    proj = hf.get("feed_forward_proj", "relu")
    if proj not in FEED_FORWARD_IN:
        raise CheckpointError(f"config.json feed_forward_proj={proj!r} is not supported; formers reads "
                              f"{sorted(FEED_FORWARD_IN)}")
    scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True) is not False)
    pad = hf.get("pad_token_id", 0)
    return T5Config(
        vocab_size=hf.get("vocab_size", 32128), d_model=hf.get("d_model", 512), d_head=hf.get("d_kv", 64),
        d_ff=hf.get("d_ff", 2048), n_layers=hf.get("num_layers", 6), n_decoder_layers=hf.get("num_decoder_layers"),
        n_heads=hf.get("num_heads", 8), relative_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_max_distance=hf.get("relative_attention_max_distance", 128), max_seq_len=hf.get("n_positions", 512),
        dropout=hf.get("dropout_rate", 0.1), norm_eps=hf.get("layer_norm_epsilon", 1e-6),
        activation=FEED_FORWARD_IN[proj], tie_weights=head_is_tied(state, "lm_head.weight", "shared.weight"),
        scale_decoder_output=bool(scale), pad_token_id=pad, eos_token_id=hf.get("eos_token_id", 1),
        decoder_start_token_id=hf.get("decoder_start_token_id", pad),
    )


def config_to_hf(c: T5Config) -> dict[str, Any]:
    require(c, "t5", position="t5", norm="rmsnorm", norm_placement="pre", bias=False, attention_scale=1.0,
            position_offset=0, scale_embedding=False, embedding_norm=False, lm_head_bias=False,
            activation=tuple(FEED_FORWARD_OUT))
    return {
        "model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "vocab_size": c.vocab_size,
        "d_model": c.d_model, "d_kv": c.head_dim, "d_ff": c.ff_dim, "num_layers": c.n_layers,
        "num_decoder_layers": c.decoder_layers, "num_heads": c.n_heads,
        "relative_attention_num_buckets": c.relative_buckets,
        "relative_attention_max_distance": c.relative_max_distance, "dropout_rate": c.dropout,
        "layer_norm_epsilon": c.norm_eps, "feed_forward_proj": FEED_FORWARD_OUT[c.activation],
        "tie_word_embeddings": c.tie_weights, "scale_decoder_outputs": c.scale_decoder_output,
        "pad_token_id": c.pad_token_id, "eos_token_id": c.eos_token_id,
        "decoder_start_token_id": c.decoder_start_token_id, "is_encoder_decoder": True,
    }


def _feed_forward(ours: str, theirs: str, gated: bool) -> list[Rule]:
    if gated:  # wi_0 is the gated (activated) half, wi_1 the linear half (Shazeer 2020)
        return [*module(ours + "gate", theirs + "wi_0", bias=False), *module(ours + "up", theirs + "wi_1", bias=False),
                *module(ours + "down", theirs + "wo", bias=False)]
    return [*module(ours + "up", theirs + "wi", bias=False), *module(ours + "down", theirs + "wo", bias=False)]


def rules(c: T5Config) -> list[Rule]:
    gated = c.activation in GATED
    out = [Rule("token_embedding.weight", ("shared.weight",))]
    for side, n in (("encoder", c.n_layers), ("decoder", c.decoder_layers)):
        bias_table = f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        out.append(Rule(f"{side}_positions.table.weight", (bias_table,)))  # one table per stack, kept in block 0
        for i in range(n):
            ours, theirs = f"{side}.blocks.{i}.", f"{side}.block.{i}.layer."
            attn = theirs + "0.SelfAttention."
            out += module(ours + "attention.sublayer.qkv", attn + "q", attn + "k", attn + "v", bias=False)
            out += module(ours + "attention.sublayer.out", attn + "o", bias=False)
            out += module(ours + "attention.norm", theirs + "0.layer_norm", bias=False)
            ff = 1
            if side == "decoder":
                cross, ff = theirs + "1.EncDecAttention.", 2
                out += module(ours + "cross_attention.sublayer.q", cross + "q", bias=False)
                out += module(ours + "cross_attention.sublayer.kv", cross + "k", cross + "v", bias=False)
                out += module(ours + "cross_attention.sublayer.out", cross + "o", bias=False)
                out += module(ours + "cross_attention.norm", theirs + "1.layer_norm", bias=False)
            out += _feed_forward(ours + "feed_forward.sublayer.", f"{theirs}{ff}.DenseReluDense.", gated)
            out += module(ours + "feed_forward.norm", f"{theirs}{ff}.layer_norm", bias=False)
        out += module(f"{side}.final_norm", f"{side}.final_layer_norm", bias=False)
    if not c.tie_weights:
        out.append(Rule("lm_head.weight", ("lm_head.weight",)))
    return out


def ignored(c: T5Config) -> list[str]:
    # the stacks' references to the shared embedding; an unused cross-attention table some checkpoints carry
    return [r"(encoder|decoder)\.embed_tokens\.weight",
            r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight"] + (
        ["lm_head.weight"] if c.tie_weights else [])


def copies(c: T5Config) -> list[tuple[str, str]]:
    return [(f"{side}.embed_tokens.weight", "shared.weight") for side in ("encoder", "decoder")]


T5 = HFFamily("t5", "t5", "T5ForConditionalGeneration", "", config_from_hf, config_to_hf, rules, ignored, copies)
