"""Objectives: turn a batch into inputs and targets, and a model's output into a loss."""

from formers.objectives.causal_lm import IGNORE_INDEX, CausalLM, CausalLMConfig, token_cross_entropy

__all__ = ["IGNORE_INDEX", "CausalLM", "CausalLMConfig", "token_cross_entropy"]
