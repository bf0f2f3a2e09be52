"""Interpretability tools that sit on top of the models: nothing in the core imports them.

attention_maps: capture_attention (weights of every layer); rollout: attention_rollout; heads: head_importance,
mask_heads; modality: modality_share, update_share; runs: build_view (one model run, labelled for drawing);
viewer: write_page, Viewer (the HTML page, and its Jupyter form).
"""

from formers.interpret.attention_maps import AttentionMaps, attention_modules, capture_attention
from formers.interpret.heads import head_importance, mask_heads
from formers.interpret.modality import modality_share, update_share
from formers.interpret.rollout import attention_rollout
from formers.interpret.runs import build_view
from formers.interpret.viewer import Viewer, write_page

__all__ = [
    "AttentionMaps", "Viewer", "attention_modules", "attention_rollout", "build_view", "capture_attention",
    "head_importance", "mask_heads", "modality_share", "update_share", "write_page",
]
