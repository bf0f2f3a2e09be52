"""GPT options beyond the contract battery."""

import math

import pytest
import torch

from formers.errors import ConfigError
from formers.interop.hf import save_hf
from formers.models import GPT, GPTConfig

TINY = dict(vocab_size=50, d_model=16, n_heads=2, n_layers=2, max_seq_len=32, dropout=0.0, tie_weights=False,
            position="sinusoidal")


def test_scale_embedding_multiplies_the_token_embeddings_by_sqrt_d_model(tmp_path):
    scaled = GPT(GPTConfig(**TINY, scale_embedding=True)).eval()
    plain = GPT(GPTConfig(**TINY)).eval()
    plain.load_state_dict(scaled.state_dict())
    with torch.no_grad():
        plain.token_embedding.weight.mul_(math.sqrt(16))
    ids = torch.randint(0, 50, (2, 9))
    # x4 is exact in binary, so both compute the same numbers; assert_close's fp32 default (1.3e-6 relative)
    # leaves room for a kernel that blocks differently
    torch.testing.assert_close(scaled(ids).logits, plain(ids).logits)
    with pytest.raises(ConfigError, match="scale_embedding=True"):  # GPT-2 has no such scaling
        save_hf(scaled, tmp_path)
