"""PPO for language models: configuration and the math, on plain tensors.

The loop that uses it (rollouts with `generate`, then several epochs of minibatch updates)
is `PPOTrainer` in ppo_trainer.py. Everything here is a pure function of small tensors, so
each piece is checked against hand-computed values in tests/alignment/test_ppo_math.py.

Shapes: B responses, R response tokens (padded); `mask` (B, R) is 1 on real response tokens.
Per-token reward (Ziegler et al. 2019; Stiennon et al. 2020):

    r_t = -kl_coef * kl_t  (+ the reward model's score on the last response token)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from formers.config import Config, check
from formers.optim import OptimizerConfig, ScheduleConfig


@dataclasses.dataclass(kw_only=True)
class KLConfig(Config):
    estimator: Literal["k1", "k3"] = "k1"  # per-token estimate of KL(policy || reference), see `kl_estimate`
    coef: float = 0.1  # beta, the weight of the KL penalty (the initial value when adaptive)
    # Adaptive control (Ziegler et al. 2019): steer the mean per-sequence KL towards `target` nats; None = fixed coef.
    target: float | None = None
    horizon: int = 10000  # samples over which the coefficient may change by a factor of about e^0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.coef >= 0, "KLConfig.coef", self.coef, "a float >= 0")
        check(self.target is None or self.target > 0, "KLConfig.target", self.target, "a positive float or null")
        check(self.horizon > 0, "KLConfig.horizon", self.horizon, "a positive int")


@dataclasses.dataclass(kw_only=True)
class PPOConfig(Config):
    iterations: int = 60  # rollout -> update rounds
    rollout_batch: int = 64  # prompts sampled per rollout
    minibatch_size: int = 16  # responses per gradient step
    ppo_epochs: int = 4  # passes over each rollout
    max_new_tokens: int = 12
    temperature: float = 1.0  # sampling temperature; log-probs use the same tempered distribution
    clip_range: float = 0.2  # epsilon of the clipped surrogate (Schulman et al. 2017)
    clip_range_value: float = 0.2  # values may move this far from the rollout's before the loss clips them
    value_coef: float = 0.1  # weight of the value loss (the trunk is shared with the policy)
    entropy_coef: float = 0.0  # weight of the entropy bonus
    gamma: float = 1.0  # discount; 1 is usual for short responses
    lam: float = 0.95  # GAE lambda (Schulman et al. 2016)
    whiten_advantages: bool = True
    normalize_reward: bool = True  # scale scores to mean 0, std 1 on the first rollout (Ziegler et al. 2019)
    kl: KLConfig = dataclasses.field(default_factory=KLConfig)
    optimizer: OptimizerConfig = dataclasses.field(
        default_factory=lambda: OptimizerConfig(lr=1e-4, weight_decay=0.0, betas=(0.9, 0.95)))
    schedule: ScheduleConfig = dataclasses.field(default_factory=lambda: ScheduleConfig(kind="constant"))
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "auto"
    log_every: int = 1  # iterations between log lines
    save_every: int = 0  # iterations between checkpoints; 0 = only at the end
    progress: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("iterations", "rollout_batch", "minibatch_size", "ppo_epochs", "max_new_tokens", "log_every"):
            check(getattr(self, name) > 0, f"PPOConfig.{name}", getattr(self, name), "a positive int")
        check(self.minibatch_size <= self.rollout_batch, "PPOConfig.minibatch_size", self.minibatch_size,
              f"at most rollout_batch={self.rollout_batch}")
        check(self.save_every >= 0, "PPOConfig.save_every", self.save_every, "an int >= 0")
        check(self.temperature > 0, "PPOConfig.temperature", self.temperature, "a positive float")
        for name in ("clip_range", "clip_range_value"):
            check(getattr(self, name) > 0, f"PPOConfig.{name}", getattr(self, name), "a positive float")
        for name in ("value_coef", "entropy_coef"):
            check(getattr(self, name) >= 0, f"PPOConfig.{name}", getattr(self, name), "a float >= 0")
        check(0 <= self.gamma <= 1, "PPOConfig.gamma", self.gamma, "a value in [0, 1]")
        check(0 <= self.lam <= 1, "PPOConfig.lam", self.lam, "a value in [0, 1]")
        check(self.grad_clip is None or self.grad_clip > 0, "PPOConfig.grad_clip", self.grad_clip, "> 0 or null")

    def updates(self) -> int:
        """Optimizer steps over the whole run (for the LR schedule)."""
        return self.iterations * self.ppo_epochs * math.ceil(self.rollout_batch / self.minibatch_size)


# ---- KL to the reference -------------------------------------------------------------------------------------


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi (Schulman 2020, "Approximating KL").

    k1 = log pi - log pi_ref: unbiased, but single samples can be negative.
    k3 = (r - 1) - log r with r = pi_ref / pi: unbiased too, and never negative.
    Both are exactly zero where the policy equals the reference.
    """
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1' or 'k3'")


class KLController:
    """The KL coefficient: fixed, or adapted towards a target KL (Ziegler et al. 2019, section 2.2).

    Adaptive rule: e = clip(KL / target - 1, -0.2, 0.2); coef <- coef * (1 + e * n / horizon),
    with n the number of samples behind the measured KL.
    """

    def __init__(self, config: KLConfig) -> None:
        self.config = config
        self.coef = config.coef

    def update(self, kl: float, n_samples: int) -> float:
        if self.config.target is not None:
            error = min(max(kl / self.config.target - 1.0, -0.2), 0.2)
            self.coef *= 1.0 + error * n_samples / self.config.horizon
        return self.coef


# ---- advantages ----------------------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries; zero elsewhere."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) -> (advantages, returns), each (B, R).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1};  returns = A + V.
    The value after a response's last token is 0 (the episode ends); padding contributes nothing.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


# ---- losses --------------------------------------------------------------------------------------------------


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> dict[str, torch.Tensor]:
    """Clipped surrogate (Schulman et al. 2017): mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip_range).float(), mask)
        approx_kl = masked_mean(kl_estimate(old_logp, logp, "k3"), mask)  # KL(old || new), how far this update went
    return {"loss": masked_mean(torch.maximum(unclipped, clipped), mask), "clipfrac": clipfrac, "approx_kl": approx_kl}


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip_range: float
) -> dict[str, torch.Tensor]:
    """Clipped value loss (as in OpenAI baselines' PPO2): 0.5 * mean of max((V - R)^2, (V_clipped - R)^2)."""
    clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
    losses = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    with torch.no_grad():
        clipfrac = masked_mean(((values - old_values).abs() > clip_range).float(), mask)
    return {"loss": 0.5 * masked_mean(losses, mask), "clipfrac": clipfrac}


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """(..., V) logits -> (...) entropy of the softmax, in nats."""
    logits = logits.float()
    return torch.logsumexp(logits, -1) - (logits.softmax(-1) * logits).sum(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over real tokens: 1 is a perfect critic, 0 no better than a constant."""
    var_returns = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    residual = returns - values
    var_residual = masked_mean((residual - masked_mean(residual, mask)) ** 2, mask)
    return float(1.0 - var_residual / var_returns.clamp(min=1e-12))
