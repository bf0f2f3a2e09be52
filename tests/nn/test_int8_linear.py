"""Weight-only int8 linear layers: what they store, what they compute, and the swap that installs them."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from formers import quantize_weights
from formers.errors import ConfigError
from formers.models import GPT, GPTConfig
from formers.nn.int8_linear import Int8Linear, quantize_int8

pytestmark = pytest.mark.usefixtures("one_thread")  # small products


def test_int8_weights_are_within_half_a_step_of_the_original():
    w = torch.randn(48, 40) * torch.logspace(-3, 1, 48)[:, None]  # rows of very different ranges
    q, scales = quantize_int8(w)
    assert q.dtype == torch.int8 and scales.dtype == torch.bfloat16 and scales.shape == (48,)
    error = (q.float() * scales.float()[:, None] - w).abs()
    # round to nearest: at most half a quantisation step per weight, each row on its own scale
    assert (error <= 0.5 * scales.float()[:, None] * (1 + 1e-6)).all()
    assert q.abs().max() >= 126  # each row's largest weight uses (nearly) the whole int8 range


def test_a_row_of_zeros_quantises_to_zeros():
    q, scales = quantize_int8(torch.zeros(3, 8))
    assert (q == 0).all() and (scales > 0).all()


@pytest.mark.parametrize("bias", [True, False])
def test_the_kernel_computes_the_dequantised_product(bias):
    linear = nn.Linear(96, 80, bias=bias)
    layer = Int8Linear.from_linear(linear)
    x = torch.randn(2, 5, 96)  # (B, T, K): any leading shape
    y = layer(x)
    assert y.shape == (2, 5, 80) and y.dtype == torch.float32
    reference = F.linear(x, layer.dequantized(), linear.bias)
    # the product runs on bf16 activations with fp32 accumulation and a bf16 result: relative error of
    # a few 2^-9 (bf16's unit roundoff), far below the weights' own quantisation error
    assert (y - reference).norm() / reference.norm() < 1e-2
    assert (reference - linear(x)).norm() / linear(x).norm() < 2e-2  # the weights' error, for scale


def test_a_bf16_model_stays_bf16():
    layer = Int8Linear.from_linear(nn.Linear(64, 32).bfloat16())
    y = layer(torch.randn(3, 64, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and y.shape == (3, 32)


def tiny_gpt(tie_weights: bool = True) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=48, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0,
                         tie_weights=tie_weights)).eval()


@pytest.mark.parametrize("tie_weights", [True, False])
def test_int8_swaps_every_linear_layer_the_lm_head_included(tie_weights):
    model = tiny_gpt(tie_weights)
    embedding = model.token_embedding.weight.detach().clone()
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert quantize_weights(model, "int8") is model
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert sum(isinstance(m, Int8Linear) for m in model.modules()) == n_linear
    assert isinstance(model.lm_head, Int8Linear)
    assert torch.equal(model.token_embedding.weight, embedding)  # lookups keep the float table
    logits = model(torch.randint(0, 48, (2, 7))).logits
    assert logits.shape == (2, 7, 48) and torch.isfinite(logits).all()


def test_fp32_is_unchanged_and_bf16_converts_everything():
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quantize_weights(model, "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    quantize_weights(model, "bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_an_unknown_weight_format_is_refused():
    with pytest.raises(ConfigError, match=r"weights='int3' is not a weight format; expected one of"):
        quantize_weights(tiny_gpt(), "int3")
