"""PPO's pieces against values computed by hand on small tensors."""

import math

import pytest
import torch

from formers.alignment import KLConfig, KLController, gae, kl_estimate, policy_loss, value_loss
from formers.alignment.ppo import entropy, explained_variance, whiten


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.3, 0.6, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])  # row 2 ends after two tokens: 5.0 and 9.0 are padding
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # row 1: delta = (0.6, 0.16, -0.32) backwards; A_t = delta_t + 0.72 * A_{t+1}
    # row 2: delta_1 = 1 - 0.6 = 0.4 (the value after the last token is 0); delta_0 = 0.9 * 0.6 - 0.3 = 0.24
    expected = torch.tensor([[0.10624, 0.592, 0.6], [0.528, 0.4, 0.0]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, torch.tensor([[0.60624, 0.792, 1.0], [0.828, 1.0, 0.0]]))


def test_clipped_policy_loss_matches_hand_computation():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))  # ratios 1.5, 0.5, 1.1
    advantages = torch.tensor([[1.0, -1.0, 2.0]])
    out = policy_loss(logp, old, advantages, torch.ones(1, 3), clip_range=0.2)
    # per token max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2; max(0.5, 0.8) = 0.8; max(-2.2, -2.2) = -2.2
    assert out["loss"].item() == pytest.approx((-1.2 + 0.8 - 2.2) / 3, abs=1e-6)
    assert out["clipfrac"].item() == pytest.approx(2 / 3)
    masked = policy_loss(logp, old, advantages, torch.tensor([[1.0, 1.0, 0.0]]), clip_range=0.2)
    assert masked["loss"].item() == pytest.approx((-1.2 + 0.8) / 2, abs=1e-6)


def test_policy_loss_gradient_is_zero_once_clipped():
    logp = torch.log(torch.tensor([[1.5, 1.1]])).requires_grad_()
    policy_loss(logp, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), clip_range=0.2)["loss"].backward()
    assert logp.grad[0, 0] == 0  # ratio 1.5 > 1.2 with A > 0: no incentive to go further
    assert logp.grad[0, 1] == pytest.approx(-1.1 / 2)  # d(-A r)/dlogp = -A r, averaged over 2 tokens


def test_clipped_value_loss_matches_hand_computation():
    values, old, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), torch.tensor([[2.0, 0.0]])
    out = value_loss(values, old, returns, torch.ones(1, 2), clip_range=0.2)
    # clipped values 0.7 and 0.3: max(1, 1.69) = 1.69 and max(0, 0.09) = 0.09
    assert out["loss"].item() == pytest.approx(0.5 * (1.69 + 0.09) / 2)
    assert out["clipfrac"].item() == 1.0


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_is_zero_when_policy_equals_reference(estimator):
    logp = torch.randn(3, 5).log_softmax(-1)
    assert torch.equal(kl_estimate(logp, logp.clone(), estimator), torch.zeros(3, 5))


def test_kl_estimators_by_hand():
    logp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert kl_estimate(logp, ref, "k1").item() == pytest.approx(math.log(2))
    assert kl_estimate(logp, ref, "k3").item() == pytest.approx((0.5 - 1) - math.log(0.5))  # r = ref / pi = 0.5
    assert kl_estimate(ref, logp, "k3").item() == pytest.approx((2 - 1) - math.log(2))
    # both are unbiased: over samples from p, E[k1] = E[k3] = KL(p || q)
    p, q = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.4, 0.4, 0.2])
    exact = (p * (p / q).log()).sum()
    for estimator in ("k1", "k3"):
        assert (p * kl_estimate(p.log(), q.log(), estimator)).sum().item() == pytest.approx(exact.item(), abs=1e-6)


def test_kl_controller_fixed_and_adaptive():
    fixed = KLController(KLConfig(coef=0.1))
    assert fixed.update(kl=50.0, n_samples=100) == 0.1
    adaptive = KLController(KLConfig(coef=0.1, target=2.0, horizon=1000))
    assert adaptive.update(kl=3.0, n_samples=100) == pytest.approx(0.1 * (1 + 0.2 * 0.1))  # error 0.5 clipped to 0.2
    assert adaptive.update(kl=1.8, n_samples=100) == pytest.approx(0.1 * 1.02 * (1 - 0.1 * 0.1))  # error -0.1
    assert adaptive.update(kl=0.0, n_samples=100) == pytest.approx(0.1 * 1.02 * 0.99 * (1 - 0.2 * 0.1))


def test_whiten_entropy_and_explained_variance():
    x, mask = torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    assert w[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (w[0, :3] ** 2).mean().item() == pytest.approx(1.0, abs=1e-4) and w[0, 3] == 0
    assert entropy(torch.zeros(2, 4)).tolist() == pytest.approx([math.log(4)] * 2)
    returns = torch.tensor([[1.0, 2.0, 3.0]])
    assert explained_variance(returns, returns, torch.ones(1, 3)) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 3), 2.0), returns, torch.ones(1, 3)) == pytest.approx(0.0)
