"""Interpretability tools that sit on top of the models: nothing in the core imports them."""

from formers.interpret.attention_maps import AttentionMaps, attention_modules, capture_attention

__all__ = ["AttentionMaps", "attention_modules", "capture_attention"]
