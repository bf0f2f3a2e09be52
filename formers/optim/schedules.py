"""Learning-rate schedules: a multiplier of the peak LR per optimizer step, with linear warmup."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch

from formers.config import Config, check

ScheduleKind = Literal["constant", "step", "exponential", "cosine", "linear", "inverse_sqrt"]


@dataclasses.dataclass(kw_only=True)
class ScheduleConfig(Config):
    kind: ScheduleKind = "cosine"
    warmup_steps: int = 0  # linear ramp from ~0 to the peak LR
    min_lr_ratio: float = 0.1  # cosine/linear floor, as a fraction of the peak
    step_size: int = 1000  # step decay: multiply by gamma every step_size steps
    gamma: float = 0.5
    decay_rate: float = 0.999  # exponential: multiplier per step

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.warmup_steps >= 0, "schedule.warmup_steps", self.warmup_steps, "an int >= 0")
        check(0.0 <= self.min_lr_ratio <= 1.0, "schedule.min_lr_ratio", self.min_lr_ratio, "a value in [0, 1]")
        check(self.step_size > 0, "schedule.step_size", self.step_size, "a positive int")
        check(0.0 < self.gamma <= 1.0, "schedule.gamma", self.gamma, "a value in (0, 1]")
        check(0.0 < self.decay_rate <= 1.0, "schedule.decay_rate", self.decay_rate, "a value in (0, 1]")


def lr_multiplier(config: ScheduleConfig, step: int, total_steps: int) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based).

    Warmup: (step + 1) / warmup_steps. After it, decay counts from the end of warmup.
    inverse_sqrt is Noam's schedule (Vaswani et al. 2017): sqrt(warmup / (step + 1)), so
    the configured lr is the peak, reached at the end of warmup.
    """
    w = config.warmup_steps
    if step < w:
        return (step + 1) / w
    if config.kind == "inverse_sqrt":
        return math.sqrt(max(w, 1) / (step + 1))
    t = step - w
    span = max(1, total_steps - w)
    progress = min(1.0, t / span)
    floor = config.min_lr_ratio
    if config.kind == "constant":
        return 1.0
    if config.kind == "step":
        return config.gamma ** (t // config.step_size)
    if config.kind == "exponential":
        return config.decay_rate**t
    if config.kind == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if config.kind == "linear":
        return floor + (1 - floor) * (1 - progress)
    raise ValueError(f"unknown schedule {config.kind!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int):
    """A LambdaLR over `lr_multiplier`; its state_dict round-trips for exact resume."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(config, step, total_steps))
