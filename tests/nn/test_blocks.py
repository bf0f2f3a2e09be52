import pytest
import torch
from torch import nn

from formers.nn import BlockConfig, FeedForward, GatedFeedForward, PostNorm, PreNorm, RMSNorm, make_block, make_norm
from formers.nn.attention import CrossAttention, SelfAttention
from formers.nn.feedforward import activation_fn
from formers.nn.kernels import SDPAKernel

D = 16


def test_rmsnorm_formula():
    norm = RMSNorm(D, eps=1e-6)
    nn.init.normal_(norm.weight)
    x = torch.randn(2, 3, D)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    assert norm(x.bfloat16()).dtype == torch.bfloat16


def test_layernorm_has_zero_mean_unit_variance():
    y = make_norm("layernorm", D, 1e-5)(torch.randn(4, D) * 5 + 3)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh", "quick_gelu", "swiglu", "geglu", "reglu"])
def test_feed_forward_shapes_and_kind(activation):
    cfg = BlockConfig(d_model=D, n_heads=2, activation=activation, d_ff=40)
    block = make_block(cfg, causal=False)
    ff = block.feed_forward.sublayer
    assert isinstance(ff, GatedFeedForward if activation in ("swiglu", "geglu", "reglu") else FeedForward)
    assert ff(torch.randn(2, 5, D)).shape == (2, 5, D)


def test_quick_gelu_is_the_sigmoid_approximation_of_gelu():
    x = torch.linspace(-6, 6, 101)
    quick = activation_fn("quick_gelu")(x)
    torch.testing.assert_close(quick, x * torch.sigmoid(1.702 * x))
    # within 0.021 of the exact GELU everywhere (Hendrycks & Gimpel's approximation error), not equal to it
    gap = (quick - torch.nn.functional.gelu(x)).abs().max().item()
    assert 1e-3 < gap < 0.021


def test_swiglu_computes_gated_product():
    ff = GatedFeedForward(D, 8, "silu", bias=False)
    x = torch.randn(3, D)
    expected = ff.down(torch.nn.functional.silu(ff.gate(x)) * ff.up(x))
    torch.testing.assert_close(ff(x), expected)


def test_pre_and_post_norm_residual_order():
    sub = nn.Linear(D, D)
    norm = nn.LayerNorm(D)
    x = torch.randn(2, D)
    torch.testing.assert_close(PreNorm(sub, norm, 0.0)(x), x + sub(norm(x)))
    torch.testing.assert_close(PostNorm(sub, norm, 0.0)(x), norm(x + sub(x)))


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_block_placement_is_a_build_choice(placement):
    block = make_block(BlockConfig(d_model=D, n_heads=2, norm_placement=placement), causal=True)
    wrapper = PreNorm if placement == "pre" else PostNorm
    assert isinstance(block.attention, wrapper) and isinstance(block.feed_forward, wrapper)
    assert block.cross_attention is None


def test_causal_self_attention_does_not_see_the_future():
    attn = SelfAttention(D, 4, kernel=SDPAKernel(), causal=True).eval()
    x = torch.randn(2, 6, D)
    y = x.clone()
    y[:, 4] += 1.0
    torch.testing.assert_close(attn(x)[:, :4], attn(y)[:, :4])
    assert not torch.allclose(attn(x)[:, 4:], attn(y)[:, 4:])


def test_cross_attention_ignores_padded_memory():
    attn = CrossAttention(D, 4, kernel=SDPAKernel(), d_memory=12).eval()
    x, memory = torch.randn(1, 3, D), torch.randn(1, 5, 12)
    mask = torch.tensor([[1, 1, 1, 0, 0]]).bool()[:, None, None, :]
    noisy = memory.clone()
    noisy[:, 3:] = torch.randn(1, 2, 12) * 100
    torch.testing.assert_close(attn(x, memory=memory, mask=mask), attn(x, memory=noisy, mask=mask))
    torch.testing.assert_close(attn(x, memory=memory[:, :3]), attn(x, memory=memory, mask=mask))


def test_decoder_block_has_cross_attention():
    block = make_block(BlockConfig(d_model=D, n_heads=2), causal=True, cross=True, d_memory=D)
    out = block(torch.randn(2, 4, D), memory=torch.randn(2, 6, D))
    assert out.shape == (2, 4, D)
