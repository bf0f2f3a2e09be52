"""Image losses: pixel terms, feature network, perceptual and style (Gram) terms, GAN losses, adaptive weight."""

import math

import pytest
import torch
from torch import nn

from formers.errors import ConfigError
from formers.models import CNN, CNNConfig, PatchGAN, PatchGANConfig
from formers.objectives.image_losses import (
    L1,
    L2,
    Adversarial,
    FeatureNetwork,
    ImageLoss,
    ImageLossConfig,
    Perceptual,
    Style,
    adaptive_weight,
    gram_matrix,
    hinge_discriminator_loss,
    hinge_generator_loss,
    judged_by_frozen,
    non_saturating_discriminator_loss,
    non_saturating_generator_loss,
)


def small_cnn() -> CNN:
    return CNN(CNNConfig(n_channels=1, widths=[8, 16], depths=[1, 1], groups=4, n_classes=3))


def features() -> FeatureNetwork:
    return FeatureNetwork(small_cnn(), ["stem", "stages.0", "stages.1"])


def test_pixel_losses():
    x, y = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])
    assert L1()(x, y).item() == pytest.approx(1.0)
    assert L2()(x, y).item() == pytest.approx(1.5)


def test_gram_matrix_is_channel_correlation_over_positions():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # (B=1, C=2, H=1, W=2)
    g = gram_matrix(f)
    # entries sum_p f_i(p) f_j(p) / (C H W) = / 4
    expected = torch.tensor([[[1 + 4, 3 - 2], [3 - 2, 9 + 1]]]) / 4.0
    torch.testing.assert_close(g, expected)
    # blind to where things are: shuffling positions (the same permutation in every channel) keeps it
    x = torch.randn(2, 3, 4, 5)
    perm = torch.randperm(20)
    shuffled = x.flatten(2)[:, :, perm].reshape(2, 3, 4, 5)
    torch.testing.assert_close(gram_matrix(shuffled), gram_matrix(x), rtol=1e-5, atol=1e-6)  # fp32 sums reordered


def test_feature_network_is_frozen_returns_its_layers_and_passes_gradients():
    net = features()
    net.train()
    assert not net.network.training  # stays in eval mode
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.randn(2, 1, 12, 12, requires_grad=True)
    out = net(x)
    assert [tuple(f.shape) for f in out] == [(2, 8, 12, 12), (2, 8, 12, 12), (2, 16, 6, 6)]
    out[-1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="not modules of CNN"):
        FeatureNetwork(small_cnn(), ["stages.7"])


def test_perceptual_is_zero_for_equal_images_and_positive_otherwise():
    loss = Perceptual(features())
    x = torch.randn(2, 1, 12, 12)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x + 0.5 * torch.randn_like(x), x).item() > 0
    # unit-normalised features: each position contributes at most ||u - v||^2 <= 4 per layer
    assert loss(-x, x).item() <= 4 * 3


def test_perceptual_matches_a_hand_computation():
    net = features()
    x, y = torch.randn(1, 1, 12, 12), torch.randn(1, 1, 12, 12)
    expected = 0.0
    for w, fx, fy in zip([0.5, 1.0, 2.0], net(x), net(y), strict=True):
        ux, uy = fx / fx.norm(dim=1, keepdim=True), fy / fy.norm(dim=1, keepdim=True)
        expected += w * ((ux - uy) ** 2).sum(1).mean().item()
    assert Perceptual(net, [0.5, 1.0, 2.0])(x, y).item() == pytest.approx(expected, rel=1e-4)


def test_style_ignores_positions_that_perceptual_sees():
    net = FeatureNetwork(nn.Sequential(nn.Conv2d(1, 4, 1)), ["0"])  # 1x1 conv: features of each pixel alone
    x = torch.randn(1, 1, 6, 6)
    flipped = x.flip(-1)
    assert Style(net)(flipped, x).item() == pytest.approx(0.0, abs=1e-7)
    assert Perceptual(net)(flipped, x).item() > 0.01


def test_style_compares_trace_one_grams_of_unit_features_so_feature_scale_does_not_matter():
    x, y = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)
    net = FeatureNetwork(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)), ["0"])
    loud = FeatureNetwork(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1)), ["0"])
    loud.network[0].weight.data = net.network[0].weight.data * 100
    loud.network[0].bias.data = net.network[0].bias.data * 100
    value = Style(net)(x, y).item()
    assert Style(loud)(x, y).item() == pytest.approx(value, rel=1e-4)  # features x100: the same term
    assert 0 < value <= 4
    f = net(x)[0]
    u = f / f.norm(dim=1, keepdim=True)
    g = gram_matrix(u) * 4  # U U^T / (H W)
    torch.testing.assert_close(g.diagonal(dim1=1, dim2=2).sum(-1), torch.ones(2))  # trace 1


def test_hinge_loss_values():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 0.5])
    # max(0, 1 - r): 0, 0.5, 2 -> mean 0.8333; max(0, 1 + f): 0, 1, 1.5 -> mean 0.8333
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(2.5 / 3 + 2.5 / 3)
    assert hinge_generator_loss(fake).item() == pytest.approx(2.5 / 3)
    # confident and right: nothing to learn
    assert hinge_discriminator_loss(torch.tensor([1.0, 5.0]), torch.tensor([-1.0, -2.0])).item() == 0.0


def test_non_saturating_loss_values():
    real, fake = torch.tensor([0.0]), torch.tensor([0.0])
    assert non_saturating_discriminator_loss(real, fake).item() == pytest.approx(2 * math.log(2))
    assert non_saturating_generator_loss(torch.tensor([math.log(3)])).item() == pytest.approx(-math.log(0.75))
    assert Adversarial("non_saturating").generator_loss is non_saturating_generator_loss


def test_generator_term_trains_the_generator_never_the_discriminator():
    d = PatchGAN(PatchGANConfig(n_channels=1, width=8, n_layers=2))
    fake = torch.randn(2, 1, 16, 16, requires_grad=True)
    hinge_generator_loss(judged_by_frozen(d, fake)).backward()
    assert fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())
    torch.testing.assert_close(judged_by_frozen(d, fake), d(fake))  # the same function


def test_patchgan_scores_patches():
    d = PatchGAN(PatchGANConfig(n_channels=3, width=8, n_layers=3))
    assert d(torch.randn(2, 3, 32, 32)).shape == (2, 1, 2, 2)  # 32 -> 16 -> 8 -> 4 -> 3 -> 2
    d2 = PatchGAN(PatchGANConfig(n_channels=1, width=8, n_layers=2))
    assert d2(torch.randn(2, 1, 28, 28)).shape == (2, 1, 5, 5)


def test_adaptive_weight_is_the_gradient_norm_ratio_at_the_last_layer():
    layer = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    out = layer(x)
    rec, gan = out.pow(2).mean(), -out[:, 0].mean()
    g_rec = torch.autograd.grad(rec, layer.weight, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan, layer.weight, retain_graph=True)[0]
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)
    torch.testing.assert_close(adaptive_weight(rec, gan, layer.weight), expected)
    doubled = adaptive_weight(2 * rec, gan, layer.weight)
    torch.testing.assert_close(doubled, 2 * expected, rtol=1e-4, atol=0)  # delta = 1e-4 breaks exact linearity


def test_image_loss_sums_the_weighted_terms():
    net = features()
    loss = ImageLoss(ImageLossConfig(l1=1.0, l2=0.5, perceptual=0.1, style=2.0), net)
    x, y = torch.randn(2, 1, 12, 12), torch.randn(2, 1, 12, 12)
    out = loss(x, y)
    expected = out["l1"] + 0.5 * out["l2"] + 0.1 * out["perceptual"] + 2.0 * out["style"]
    torch.testing.assert_close(out["loss"], expected)
    assert set(out) == {"l1", "l2", "perceptual", "style", "reconstruction", "loss"}


def test_image_loss_with_a_discriminator_trains_each_side_on_its_own_term():
    d = PatchGAN(PatchGANConfig(n_channels=1, width=8, n_layers=2))
    decoder = nn.Conv2d(1, 1, 3, padding=1)
    loss = ImageLoss(ImageLossConfig(l1=1.0, l2=0.0, adversarial=0.5))
    target = torch.randn(2, 1, 16, 16)
    prediction = decoder(torch.randn(2, 1, 16, 16))
    out = loss(prediction, target, discriminator=d, last_layer=decoder.weight)
    expected = out["reconstruction"] + 0.5 * out["adaptive_weight"] * out["generator"] + out["discriminator"]
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    d_grads = [p.grad.clone() for p in d.parameters()]
    # the discriminator's gradient is exactly that of its own loss
    for p in d.parameters():
        p.grad = None
    loss.adversarial.discriminator_loss(d(target), d(prediction.detach())).backward()
    for g, p in zip(d_grads, d.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_image_loss_needs_what_its_terms_read():
    with pytest.raises(ConfigError, match="feature_network=None"):
        ImageLoss(ImageLossConfig(perceptual=1.0))
    with pytest.raises(ConfigError, match="needs a discriminator"):
        ImageLoss(ImageLossConfig(adversarial=1.0))(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ConfigError, match="some reconstruction weight"):
        ImageLossConfig(l2=0.0, adversarial=1.0)
