"""The Trainer and what it writes."""

from formers.training.trainer import BatchSource, Objective, Trainer, TrainerConfig

__all__ = ["BatchSource", "Objective", "Trainer", "TrainerConfig"]
