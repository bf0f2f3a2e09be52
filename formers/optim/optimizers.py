"""Optimizers and the weight-decay split."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.errors import ConfigError

# Devices with fused Adam/AdamW/SGD kernels in torch 2.x (CPU since 2.4).
_FUSED_DEVICES = ("cpu", "cuda", "xpu", "mps")


@dataclasses.dataclass(kw_only=True)
class OptimizerConfig(Config):
    """The optimizer and its hyperparameters; `lr` is the peak LR that the schedule scales."""

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 3e-4  # peak learning rate
    # AdamW: decoupled decay (Loshchilov & Hutter 2019), on matrices only (see `param_groups`).
    # Adam and SGD: classic L2, added to the gradient.
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)  # beta2=0.95 rather than 0.999: steadier for LMs (GPT-3)
    eps: float = 1e-8
    momentum: float = 0.9  # sgd only
    fused: bool | None = None  # None: fused kernels where supported, else foreach (both beat the per-tensor loop)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.lr > 0, "optimizer.lr", self.lr, "a positive float")
        check(self.weight_decay >= 0, "optimizer.weight_decay", self.weight_decay, "a float >= 0")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optimizer.betas", self.betas,
              "two values in [0, 1)")
        check(self.eps > 0, "optimizer.eps", self.eps, "a positive float")
        check(0 <= self.momentum < 1, "optimizer.momentum", self.momentum, "a value in [0, 1)")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices (ndim >= 2: linear and embedding weights) decay; biases and norm gains do not.

    This is nanoGPT's rule: decaying a bias or a LayerNorm gain towards 0 only fights the
    normalisation. Frozen parameters are left out; tied parameters appear once; the order is
    `named_parameters()` order, so it is the same in every process and every run.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _as_list(params: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    # torch accepts one tensor or any iterable; a generator must be read once, here, to be counted
    return [params] if isinstance(params, torch.Tensor) else list(params)


def _fused_supported(params: list[torch.Tensor]) -> bool:
    return all(p.is_floating_point() and p.device.type in _FUSED_DEVICES for p in params)


def build_optimizer(model_or_groups: nn.Module | list[dict], config: OptimizerConfig) -> torch.optim.Optimizer:
    """An optimizer over a module (the `param_groups` split) or over explicit param-group dicts.

    Keys a group sets itself ("lr" for layer-wise LR decay, "weight_decay", any label) are
    kept; the config fills in the rest. Empty groups are dropped (torch refuses none, but an
    empty group is only noise in the state dict).
    """
    if isinstance(model_or_groups, nn.Module):
        groups = param_groups(model_or_groups, config.weight_decay)
    else:
        groups = [{**g, "params": _as_list(g["params"])} for g in model_or_groups]
    groups = [g for g in groups if g["params"]]
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ConfigError("the optimizer got no trainable parameters (every parameter has requires_grad=False, "
                          "or every param group is empty); unfreeze at least one part of the model")
    fused = _fused_supported(params) if config.fused is None else config.fused
    kernel = {"fused": True} if fused else {"foreach": True}
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               **kernel)
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay, **kernel)
