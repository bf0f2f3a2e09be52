"""The shapes and models every GPT benchmark shares: the same GPT-2 architecture in each library."""

from __future__ import annotations

import dataclasses

import torch

LIBS = ("hf", "x-transformers", "formers")
NEW_TOKENS = 128


@dataclasses.dataclass(frozen=True)
class Shape:
    layers: int
    d: int
    heads: int
    seq: int
    vocab: int
    batch: int
    repeats: int  # timed training steps (after one warm-up)


SHAPES = {
    "quick": Shape(layers=2, d=64, heads=2, seq=32, vocab=512, batch=2, repeats=2),
    "small": Shape(layers=6, d=384, heads=6, seq=256, vocab=8192, batch=8, repeats=5),  # the foundation's shape
    "gpt2": Shape(layers=12, d=768, heads=12, seq=512, vocab=50257, batch=4, repeats=3),  # GPT-2 124M
}


def build(lib: str, s: Shape) -> torch.nn.Module:
    """The same GPT-2 architecture in each library (learned positions, pre-norm, tied head, no dropout)."""
    torch.manual_seed(0)
    positions = s.seq + NEW_TOKENS + 32  # room for the generation runs
    if lib == "hf":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(GPT2Config(
            n_layer=s.layers, n_embd=s.d, n_head=s.heads, n_positions=positions, vocab_size=s.vocab,
            attn_implementation="sdpa", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None,
            eos_token_id=None,
        ))
    if lib == "x-transformers":
        from x_transformers import Decoder, TransformerWrapper

        return TransformerWrapper(
            num_tokens=s.vocab, max_seq_len=positions, tie_embedding=True,
            attn_layers=Decoder(dim=s.d, depth=s.layers, heads=s.heads, attn_flash=True),
        )
    from formers.models import GPT, GPTConfig

    return GPT(GPTConfig(
        n_layers=s.layers, d_model=s.d, n_heads=s.heads, max_seq_len=positions, vocab_size=s.vocab,
        activation="gelu_tanh", dropout=0.0,
    ))
