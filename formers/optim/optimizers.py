"""Optimizers and the weight-decay split."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig(Config):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 3e-4  # peak learning rate
    weight_decay: float = 0.1  # decoupled (Loshchilov & Hutter 2019), on matrices only
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    momentum: float = 0.9  # sgd
    fused: bool | None = None  # None: fused kernels where supported, else foreach

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr > 0, "optimizer.lr", self.lr, "a positive float")
        check(self.weight_decay >= 0, "optimizer.weight_decay", self.weight_decay, "a float >= 0")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas", self.betas,
              "two values in [0, 1)")
        check(self.eps > 0, "optimizer.eps", self.eps, "a positive float")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (ndim >= 2); not biases or norm weights (the nanoGPT rule). Frozen parameters are left out."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _fused_supported(params: list[torch.Tensor]) -> bool:
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_optimizer(model_or_groups: nn.Module | list[dict], config: OptimizerConfig) -> torch.optim.Optimizer:
    """An optimizer over a module (default decay split) or explicit param groups (their own "lr" is kept)."""
    groups = (
        param_groups(model_or_groups, config.weight_decay)
        if isinstance(model_or_groups, nn.Module)
        else model_or_groups
    )
    groups = [g for g in groups if g["params"]]
    params = [p for g in groups for p in g["params"]]
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=0.0)
    fused = _fused_supported(params) if config.fused is None else config.fused
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    kwargs = {"fused": True} if fused else {"foreach": True}
    return cls(groups, lr=config.lr, betas=config.betas, eps=config.eps, **kwargs)
