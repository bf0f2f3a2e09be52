"""Weight-only int4 linear layers: what they store, what the kernel computes with it, the swap that installs them."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from formers import quantize_weights
from formers.errors import ConfigError
from formers.models import GPT, GPTConfig
from formers.nn.int4_linear import Int4Linear, dequantize_int4, quantize_int4

pytestmark = pytest.mark.usefixtures("one_thread")  # small products


@pytest.mark.parametrize("group_size", [32, 64, 128, 256])
def test_int4_weights_are_within_half_a_step_of_the_original(group_size):
    w = torch.randn(48, 512) * torch.logspace(-3, 1, 48)[:, None]  # rows of very different ranges
    q, scales_and_zeros = quantize_int4(w, group_size)
    assert q.dtype == torch.int32 and q.shape == (48, 512) and q.min() >= 0 and q.max() <= 15
    assert scales_and_zeros.shape == (512 // group_size, 48, 2) and scales_and_zeros.dtype == torch.bfloat16
    step = scales_and_zeros[..., 0].float().t().repeat_interleave(group_size, dim=1)  # (N, K): each weight's group
    error = (dequantize_int4(q, scales_and_zeros) - w).abs()
    # round to nearest: at most half a step, plus what rounding the zero to bf16 moves the grid (2^-9 of it)
    zero = scales_and_zeros[..., 1].float().t().repeat_interleave(group_size, dim=1)
    assert (error <= 0.5 * step * (1 + 1e-6) + zero.abs() * 2**-8).all()
    groups = q.view(48, -1, group_size)
    # each group's extremes land on the ends of the range (or one step in, when the bf16 grid moved them)
    assert (groups.amin(-1) <= 1).all() and (groups.amax(-1) >= 14).all()


def test_odd_shapes_are_padded():
    q, scales_and_zeros = quantize_int4(torch.randn(40, 80), group_size=64)  # N to 48 (16s), K to 128 (64s)
    assert q.shape == (48, 128) and scales_and_zeros.shape == (2, 48, 2)
    assert dequantize_int4(q, scales_and_zeros)[40:].abs().max() == 0  # padded outputs: all-zero groups, exact
    # padded inputs share a group with real ones, so they land on its grid near 0, not at 0; the layer pads the
    # input with zeros to match, which the kernel test below checks with 80 inputs


def test_a_group_of_equal_weights_is_exact():
    w = torch.full((16, 64), 0.25)
    assert torch.equal(dequantize_int4(*quantize_int4(w, 32)), w)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(80, 96), (40, 80), (16, 256)])  # padded outputs, padded inputs, neither
def test_the_kernel_computes_the_dequantised_product(bias, shape):
    n, k = shape
    linear = nn.Linear(k, n, bias=bias)
    layer = Int4Linear.from_linear(linear, group_size=32)
    x = torch.randn(2, 5, k)  # (B, T, K): any leading shape
    y = layer(x)
    assert y.shape == (2, 5, n) and y.dtype == torch.float32
    weight = dequantize_int4(*quantize_int4(linear.weight, 32))[:n, :k]
    reference = F.linear(x, weight, linear.bias)
    # the product runs on bf16 activations with fp32 accumulation and a bf16 result: relative error of
    # a few 2^-9 (bf16's unit roundoff), far below the weights' own quantisation error
    assert (y - reference).norm() / reference.norm() < 1e-2
    # the weights' own error, for scale: 4 bits over a group's range is ~1/30 of it per weight (measured ~0.05)
    assert (reference - linear(x)).norm() / linear(x).norm() < 0.1


def test_bad_group_sizes_and_devices_are_refused():
    with pytest.raises(ConfigError, match=r"int4 group_size=48 is not one the kernel takes; expected one of"):
        Int4Linear.from_linear(nn.Linear(96, 32), group_size=48)
    with pytest.raises(ConfigError, match="int4 weights decode on CPU only"):
        Int4Linear.from_linear(nn.Linear(64, 32, device="meta"))


@pytest.mark.parametrize("tie_weights", [True, False])
def test_int4_swaps_every_linear_layer_the_lm_head_included(tie_weights):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=48, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.0,
                          tie_weights=tie_weights)).eval()
    ids = torch.randint(0, 48, (2, 7))
    before, embedding = model(ids).logits, model.token_embedding.weight.detach().clone()
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert quantize_weights(model, "int4") is model
    assert sum(isinstance(m, Int4Linear) for m in model.modules()) == n_linear
    assert isinstance(model.lm_head, Int4Linear) and model.lm_head.group_size == 32  # width 32: one group
    assert torch.equal(model.token_embedding.weight, embedding)  # lookups keep the float table
    logits = model(ids).logits
    assert logits.shape == (2, 7, 48)
    # random init is int4's worst case (no structure, every group spans ~4 sigma); measured 0.076 and 0.084 here
    assert (logits - before).norm() / before.norm() < 0.2
