"""Optimizers and learning-rate schedules."""

from formers.optim.optimizers import OptimizerConfig, build_optimizer, param_groups
from formers.optim.schedules import ScheduleConfig, build_scheduler, lr_multiplier

__all__ = ["OptimizerConfig", "ScheduleConfig", "build_optimizer", "build_scheduler", "lr_multiplier", "param_groups"]
