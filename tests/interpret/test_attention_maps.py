"""capture_attention: weights from every layer, outputs unchanged, kernels restored."""

import pytest
import torch

from formers.errors import ConfigError
from formers.interpret import capture_attention
from formers.models import GPT, GPTConfig, T5Config
from formers.nn import CrossAttention, SelfAttention
from formers.nn.kernels import SDPAKernel
from formers.registry import build_model

TINY = dict(vocab_size=31, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0)


def test_weights_match_the_model_and_leave_its_output_and_kernels_unchanged():
    model = GPT(GPTConfig(**TINY)).eval()
    x = torch.randint(0, 31, (2, 7))
    reference = model(x).logits
    with capture_attention(model) as maps:
        logits = model(x).logits
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    weights = maps.stacked()
    assert weights.shape == (2, 2, 4, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 4, 7))
    assert weights.triu(diagonal=1).abs().max() == 0  # causal: nothing above the diagonal
    assert all(isinstance(m.kernel, SDPAKernel) for m in model.modules() if isinstance(m, SelfAttention))


def test_cross_attention_maps_and_restore_after_an_error():
    model = build_model(T5Config(**TINY)).eval()
    src, tgt = torch.randint(1, 31, (1, 9)), torch.randint(1, 31, (1, 5))
    with pytest.raises(RuntimeError, match="boom"), capture_attention(model) as maps:
        model(input_ids=src, decoder_input_ids=tgt)
        cross = [n for n in maps.names() if "cross" in n]
        assert cross and maps[cross[0]].shape == (1, 4, 5, 9)
        raise RuntimeError("boom")
    kernels = [m.kernel for m in model.modules() if isinstance(m, (SelfAttention, CrossAttention))]
    assert kernels and all(isinstance(k, SDPAKernel) for k in kernels)  # no recorder left behind


def test_long_context_kernels_and_empty_maps_are_refused():
    model = GPT(GPTConfig(**TINY, kernel="sliding_window"))
    with pytest.raises(ConfigError, match="kernel='sdpa'"), capture_attention(model):
        pass
    with pytest.raises(ConfigError, match="recorded nothing"), capture_attention(GPT(GPTConfig(**TINY))) as maps:
        maps[maps.names()[0]]
