"""Model families. Importing this package registers each one by name."""

from formers.models.gpt import GPT, GPTConfig
from formers.models.output import ModelOutput

__all__ = ["GPT", "GPTConfig", "ModelOutput"]
