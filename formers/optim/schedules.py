"""Learning-rate schedules: a multiplier of the peak LR per optimizer step, with linear warmup.

Every schedule is a pure function of (config, step, total_steps), so resuming only needs the
step count: `LambdaLR.state_dict()` holds it (plus the base LRs) as plain JSON-able data.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, get_args

import torch

from formers.config import Config, check
from formers.errors import ConfigError

ScheduleKind = Literal["constant", "step", "exponential", "cosine", "linear", "inverse_sqrt"]


@dataclasses.dataclass(kw_only=True)
class ScheduleConfig(Config):
    """Which decay follows the (optional) linear warmup, and its knobs."""

    kind: ScheduleKind = "cosine"
    # Linear ramp from ~0 to the peak LR. Adam's second-moment estimate is noisy in the first
    # steps; warmup keeps those early updates small (Vaswani et al. 2017; Liu et al. 2020, RAdam).
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine/linear floor, as a fraction of the peak (nanoGPT/Chinchilla use 0.1)
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
    """Multiplier of the peak LR at optimizer step `step` (0-based) of a `total_steps` run.

    Warmup gives (step + 1) / warmup_steps, so the first step already moves and the last
    warmup step reaches the peak. Decay is then counted from the end of warmup:

    - constant: 1.
    - step: gamma ** (t // step_size), t = steps since warmup.
    - exponential: decay_rate ** t.
    - cosine: floor + (1 - floor) * (1 + cos(pi * p)) / 2, p = t / (total_steps - warmup_steps)
      (Loshchilov & Hutter 2017, SGDR, without restarts); it reaches the floor at `total_steps`.
    - linear: floor + (1 - floor) * (1 - p).
    - inverse_sqrt: Noam's schedule (Vaswani et al. 2017, eq. 3), sqrt(warmup / (step + 1)),
      or 1 / sqrt(step + 1) without warmup. Here the configured `lr` is the *peak*, reached at
      the end of warmup; the paper's d_model**-0.5 * warmup**-0.5 is that peak (7.0e-4 for
      d_model=512, warmup=4000).

    Steps past `total_steps` stay at the end value (the floor for cosine and linear).
    """
    if step < 0:
        raise ValueError(f"step={step} must be >= 0 (optimizer steps are counted from 0)")
    w = config.warmup_steps
    if step < w:
        return (step + 1) / w
    if config.kind == "inverse_sqrt":
        # Same formula as the warmup branch's continuation: min((s)/w, sqrt(w/s)) with s = step + 1.
        return math.sqrt(max(w, 1) / (step + 1))
    t = step - w
    progress = min(1.0, t / max(1, total_steps - w))
    floor = config.min_lr_ratio
    if config.kind == "constant":
        return 1.0
    if config.kind == "step":
        return config.gamma ** (t // config.step_size)
    if config.kind == "exponential":
        return config.decay_rate**t
    if config.kind == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.kind == "linear":
        return floor + (1.0 - floor) * (1.0 - progress)
    raise ConfigError(f"schedule.kind={config.kind!r} is not allowed; expected one of {get_args(ScheduleKind)}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over `lr_multiplier`: each group's LR is its own base LR times the multiplier.

    Per-group base LRs (layer-wise decay) are kept. The multiplier is a plain closure, so
    `state_dict()` is JSON-able (LambdaLR stores None for functions) and `load_state_dict`
    resumes at the saved step exactly.
    """
    config = config.replace()  # a private copy: editing the caller's config later cannot bend the schedule
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(config, step, total_steps))
