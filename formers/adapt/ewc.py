"""Penalties that hold a fine-tuned model near its pretrained weights: EWC and L2-SP.

- EWC (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in neural networks"):
  strength / 2 * sum_i F_i (theta_i - theta*_i)^2, with F the diagonal Fisher information of
  the ORIGINAL task at the pretrained weights theta*: weights the old task relies on are held
  tightly, the rest move freely.
- L2-SP (Li, Grandvalet & Davoine 2018, "Explicit inductive bias for transfer learning"):
  strength / 2 * ||theta - theta*||^2, the same pull with F = 1 (weight decay towards the
  starting point instead of towards zero).

A penalty is a zero-argument callable returning a scalar; it holds the live parameters it was
built on and a copy of their anchor values. `objective_with_penalty(objective, penalty)` adds it
to any objective's loss, so penalties compose with classification, MLM, anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from formers.config import check
from formers.errors import ConfigError, DataError, ShapeMismatchError

Objective = Callable[[nn.Module, dict], dict]
Penalty = Callable[[], torch.Tensor]


def fisher_diagonal(model: nn.Module, objective: Objective, batches: Iterable[dict], *,
                    normalize: bool = False) -> dict[str, torch.Tensor]:
    """Diagonal (empirical) Fisher of `objective` at the current weights: the mean over batches of grad^2.

    Squared mini-batch gradients estimate the Fisher up to a factor of the batch size (the
    per-example form is B times larger); in-batch contrastive losses have no per-example form.
    With `normalize`, F is scaled to mean 1 over all entries, so an EWC strength reads on the
    same scale as an L2-SP strength. Only trainable parameters are estimated; eval mode (no dropout).
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    was_training = model.training
    model.eval()
    n_batches = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        objective(model, batch)["loss"].backward()
        for name, p in params.items():
            if p.grad is not None:
                fisher[name] += p.grad.detach().float() ** 2
        n_batches += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if n_batches == 0:
        raise DataError("fisher_diagonal got no batches; pass a few batches of the ORIGINAL task")
    fisher = {n: f / n_batches for n, f in fisher.items()}
    if normalize:
        mean = sum(f.sum() for f in fisher.values()) / sum(f.numel() for f in fisher.values())
        fisher = {n: f / mean.clamp(min=1e-30) for n, f in fisher.items()}
    return fisher


class EWC:
    """strength / 2 * sum F (theta - theta*)^2 over the parameters named in `fisher`; theta* = now."""

    def __init__(self, model: nn.Module, fisher: dict[str, torch.Tensor] | None, strength: float) -> None:
        if not fisher:
            raise ConfigError("EWC needs a Fisher estimate of the original task: "
                              "fisher = fisher_diagonal(model, original_objective, original_batches), "
                              "computed BEFORE fine-tuning, then EWC(model, fisher, strength)")
        check(strength >= 0, "EWC.strength", strength, "a float >= 0")
        params = dict(model.named_parameters())
        unknown = sorted(set(fisher) - set(params))
        if unknown:
            raise ConfigError(f"the Fisher estimate names parameters {unknown[:3]}... that {type(model).__name__} "
                              "does not have; estimate it on the same model (wrapped the same way)")
        self.strength = strength
        self.terms = []
        for name, f in fisher.items():
            p = params[name]
            if f.shape != p.shape:
                raise ShapeMismatchError(f"Fisher for {name} is {tuple(f.shape)} but the parameter is "
                                         f"{tuple(p.shape)}")
            self.terms.append((p, p.detach().clone(), f.to(p.device)))

    def __call__(self) -> torch.Tensor:
        total = sum((f * (p.float() - anchor.float()) ** 2).sum() for p, anchor, f in self.terms)
        return 0.5 * self.strength * total


class L2SP:
    """strength / 2 * ||theta - theta*||^2 over `model`'s parameters (or those `names` lists); theta* = now."""

    def __init__(self, model: nn.Module, strength: float, names: Iterable[str] | None = None) -> None:
        check(strength >= 0, "L2SP.strength", strength, "a float >= 0")
        params = dict(model.named_parameters())
        names = list(params) if names is None else list(names)
        unknown = sorted(set(names) - set(params))
        if unknown or not names:
            raise ConfigError(f"L2SP names {unknown[:3] or names} match no parameter of {type(model).__name__}")
        self.strength = strength
        self.terms = [(params[n], params[n].detach().clone()) for n in names]

    def __call__(self) -> torch.Tensor:
        return 0.5 * self.strength * sum(((p.float() - a.float()) ** 2).sum() for p, a in self.terms)


def objective_with_penalty(objective: Objective, penalty: Penalty) -> Objective:
    """objective(model, batch) with penalty() added to its loss; reports task_loss and penalty apart."""

    def penalised(model: nn.Module, batch: dict) -> dict:
        metrics = objective(model, batch)
        extra = penalty()
        return {**metrics, "loss": metrics["loss"] + extra, "task_loss": metrics["loss"].detach(),
                "penalty": extra.detach()}

    return penalised
