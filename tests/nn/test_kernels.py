import pytest
import torch

from formers.nn import causal_mask, explicit_attention, padding_mask, sdpa_attention

B, H, T, D = 2, 3, 7, 8


def qkv(t_q=T, t_k=T, dtype=torch.float32, grad=False):
    q = torch.randn(B, H, t_q, D, dtype=dtype, requires_grad=grad)
    k = torch.randn(B, H, t_k, D, dtype=dtype, requires_grad=grad)
    v = torch.randn(B, H, t_k, D, dtype=dtype, requires_grad=grad)
    return q, k, v


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_explicit_equals_sdpa(causal, with_mask, with_bias):
    q, k, v = qkv()
    mask = padding_mask(torch.tensor([[1] * T, [0, 0] + [1] * (T - 2)])) if with_mask else None
    bias = torch.randn(1, H, T, T) if with_bias else None
    fast = sdpa_attention(q, k, v, mask=mask, bias=bias, causal=causal)
    slow, weights = explicit_attention(q, k, v, mask=mask, bias=bias, causal=causal)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert weights.shape == (B, H, T, T)


def test_explicit_weights_are_softmax_of_scaled_scores():
    q, k, v = qkv()
    _, w = explicit_attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / D**0.5, dim=-1)
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, T))


def test_unscaled_option_changes_the_distribution():
    q, k, v = qkv()
    _, scaled = explicit_attention(q, k, v)
    _, unscaled = explicit_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(unscaled, torch.softmax(q @ k.transpose(-2, -1), -1))
    entropy = lambda w: -(w * w.clamp_min(1e-12).log()).sum(-1).mean()  # noqa: E731
    assert entropy(unscaled) < entropy(scaled)
    torch.testing.assert_close(sdpa_attention(q, k, v, scale=1.0), explicit_attention(q, k, v, scale=1.0)[0])


def test_causal_with_cache_offset_matches_full_rows():
    """Queries that are the last rows of a longer sequence see exactly their past."""
    q, k, v = qkv()
    full = sdpa_attention(q, k, v, causal=True)
    for t_q in (1, 3):
        part = sdpa_attention(q[:, :, -t_q:], k, v, causal=True)
        torch.testing.assert_close(part, full[:, :, -t_q:], atol=1e-6, rtol=1e-5)
        part_slow, _ = explicit_attention(q[:, :, -t_q:], k, v, causal=True)
        torch.testing.assert_close(part_slow, full[:, :, -t_q:], atol=1e-6, rtol=1e-5)


def test_causal_mask_shape_and_offset():
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("path", ["sdpa", "explicit"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_fully_masked_rows_are_zero_with_finite_gradients(dtype, path, with_bias):
    q, k, v = qkv(dtype=dtype, grad=True)
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    mask[0, :, 2] = False  # query 2 of sequence 0 may see nothing
    mask[1] = False  # sequence 1 is all padding
    bias = torch.randn(1, H, T, T, dtype=dtype) if with_bias else None
    if path == "sdpa":
        out = sdpa_attention(q, k, v, mask=mask, bias=bias)
    else:
        out = explicit_attention(q, k, v, mask=mask, bias=bias)[0]
    assert torch.isfinite(out).all()
    assert (out[0, :, 2] == 0).all() and (out[1] == 0).all()
    out.float().pow(2).sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    assert (q.grad[1] == 0).all()
