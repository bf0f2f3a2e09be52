"""Vector quantisation: nearest codes, the straight-through gradient, the two loss terms, EMA math, revival."""

import pytest
import torch

from formers.errors import ConfigError
from formers.nn.quantize import (
    EMACodebook,
    LearnedCodebook,
    QuantizerConfig,
    make_quantizer,
    nearest_codes,
    perplexity,
)


def config(**fields) -> QuantizerConfig:
    return QuantizerConfig(**{"codebook_size": 4, "code_dim": 2, "revive_below": 0.0, **fields})


def with_codes(quantizer, codes: torch.Tensor):
    quantizer.weight.data.copy_(codes)
    if isinstance(quantizer, EMACodebook):
        quantizer.embed_sum.copy_(codes)
    return quantizer


CODES = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])


def cells(vectors: list[list[float]]) -> torch.Tensor:
    """N D-vectors -> encoder outputs (1, D, 1, N): one row of N grid cells."""
    return torch.tensor(vectors).T.reshape(1, len(vectors[0]), 1, len(vectors))


def test_nearest_code_by_euclidean_distance():
    z = torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.2, 0.7], [4.0, 4.0], [0.6, 0.0]])
    assert nearest_codes(z, CODES).tolist() == [0, 1, 2, 3, 1]


@pytest.mark.parametrize("kind", ["learned", "ema"])
def test_forward_returns_the_codes_vectors_and_their_indices(kind):
    q = with_codes(make_quantizer(config(kind=kind)), CODES).eval()
    out = q(cells([[0.1, 0.9], [4.5, 5.2]]))
    assert out.codes.tolist() == [[[2, 3]]]
    torch.testing.assert_close(out.quantized, cells([[0.0, 1.0], [5.0, 5.0]]))


def test_the_decoder_gradient_passes_straight_through_to_the_encoder():
    q = with_codes(LearnedCodebook(config()), CODES).eval()
    z = cells([[0.1, 0.9], [4.5, 5.2]]).requires_grad_()
    upstream = torch.randn(1, 2, 1, 2)
    (q(z).quantized * upstream).sum().backward()
    # d quantized / d z_e is the identity (van den Oord et al. 2017, 3.2), although argmin has no gradient
    torch.testing.assert_close(z.grad, upstream)
    assert q.weight.grad is None  # the codebook learns from its own term, not from the decoder's gradient


def test_commitment_trains_the_encoder_and_codebook_term_the_codes():
    cfg = config(beta=0.25)
    q = with_codes(LearnedCodebook(cfg), CODES).eval()
    z = cells([[0.2, 0.6], [4.0, 5.0]]).requires_grad_()
    out = q(z)
    e = torch.tensor([[0.0, 1.0], [5.0, 5.0]])  # code 2 and code 3
    zs = torch.tensor([[0.2, 0.6], [4.0, 5.0]])
    mse = ((zs - e) ** 2).mean()
    torch.testing.assert_close(out.commitment, mse)
    torch.testing.assert_close(out.codebook, mse)
    torch.testing.assert_close(out.loss, 1.25 * mse)  # codebook term + beta * commitment
    out.loss.backward()
    # d/dz of beta * mean((z - e)^2) = beta * 2 (z - e) / N, N = 4 elements; nothing else reaches z
    torch.testing.assert_close(z.grad, cells((0.25 * 2 * (zs - e) / 4).tolist()))
    # d/de of mean((z - e)^2) for the chosen codes only
    expected = torch.zeros(4, 2)
    expected[2], expected[3] = 2 * (e[0] - zs[0]) / 4, 2 * (e[1] - zs[1]) / 4
    torch.testing.assert_close(q.weight.grad, expected)


def test_ema_loss_is_beta_times_commitment_only():
    q = with_codes(EMACodebook(config(beta=0.25)), CODES).eval()
    out = q(cells([[0.2, 0.6]]))
    torch.testing.assert_close(out.loss, 0.25 * out.commitment)
    assert not any(p.requires_grad for p in q.parameters())  # no parameter: the averages move the codes


def test_ema_update_follows_the_moving_average_formulas():
    gamma, eps = 0.9, 1e-5
    q = with_codes(EMACodebook(config(decay=gamma, eps=eps)), CODES).train()
    z = torch.tensor([[0.1, 0.0], [0.3, 0.2], [0.8, 0.1], [4.0, 6.0], [6.0, 6.0]])  # codes 0, 0, 1, 3, 3
    q(cells(z.tolist()))
    n = torch.tensor([2.0, 1.0, 0.0, 2.0])
    sums = torch.stack([z[0] + z[1], z[2], torch.zeros(2), z[3] + z[4]])
    cluster = gamma * torch.ones(4) + (1 - gamma) * n
    embed_sum = gamma * CODES + (1 - gamma) * sums
    smoothed = (cluster + eps) / (cluster.sum() + 4 * eps) * cluster.sum()
    torch.testing.assert_close(q.cluster_size, cluster)
    torch.testing.assert_close(q.embed_sum, embed_sum)
    torch.testing.assert_close(q.weight, embed_sum / smoothed[:, None])
    # an unused code keeps its vector (up to the smoothing, ~eps)
    torch.testing.assert_close(q.weight[2], CODES[2], rtol=1e-4, atol=1e-4)


def test_ema_codes_converge_to_the_mean_of_their_vectors():
    q = with_codes(EMACodebook(config(decay=0.8)), CODES).train()
    z = cells([[0.3, 0.4], [0.1, 0.2], [5.0, 4.0], [6.0, 4.0]])  # codes 0, 0, 3, 3
    for _ in range(40):  # not so many that the unused codes' N_k decays to ~eps (they would then shrink to 0)
        q(z)
    # 0.8^40 = 1e-4 of the initial vector is left
    torch.testing.assert_close(q.weight[0], torch.tensor([0.2, 0.3]), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(q.weight[3], torch.tensor([5.5, 4.0]), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kind", ["learned", "ema"])
def test_dead_codes_are_revived_from_the_batch(kind):
    torch.manual_seed(0)
    q = make_quantizer(QuantizerConfig(kind=kind, codebook_size=8, code_dim=3, revive_below=0.5)).train()
    z = torch.randn(4, 3, 4, 4) + 10.0  # far from every random initial code
    q(z)  # usage starts at zero: every code is dead and restarts at one of the batch's vectors
    vectors = z.permute(0, 2, 3, 1).reshape(-1, 3)
    distances = (q.weight.detach()[:, None] - vectors[None]).norm(dim=-1)  # (K, N)
    assert distances.min(1).values.max() < 1e-5  # each code is now one of the encoder outputs
    out = q.eval()(z)
    assert out.codes.unique().numel() > 1


def test_no_revival_when_disabled():
    q = with_codes(LearnedCodebook(config(revive_below=0.0)), CODES).train()
    q(torch.full((1, 2, 2, 2), 0.1))
    torch.testing.assert_close(q.weight.detach(), CODES)


def test_perplexity_counts_codes_in_even_use():
    assert perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0])).item() == pytest.approx(4.0)
    assert perplexity(torch.tensor([9.0, 0.0, 0.0, 0.0])).item() == pytest.approx(1.0)


def test_quantizer_runs_in_fp32_under_bf16_autocast():
    q = make_quantizer(QuantizerConfig(codebook_size=16, code_dim=8)).train()
    z = torch.randn(2, 8, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = q(z.bfloat16())
    assert out.quantized.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    assert out.codes.shape == (2, 3, 3)


def test_bad_config_is_named():
    with pytest.raises(ConfigError, match="QuantizerConfig.codebook_size=1"):
        QuantizerConfig(codebook_size=1)
    with pytest.raises(ConfigError, match="QuantizerConfig.decay=1.0"):
        QuantizerConfig(decay=1.0)
