"""Loading: a checkpoint folder, a run directory or a Hugging Face folder -> a model or its tokenizer.

This sits above the model-family table (registry.py) and interop; the files themselves are
read and written by `formers.storage`, which training and interop use directly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from formers.data.tokenizers import Tokenizer
from formers.errors import CheckpointError, ConfigError
from formers.interop import hf
from formers.registry import build_model, model_config_from_dict
from formers.storage import CONFIG_FILE, load_model_weights, read_config, resolve_checkpoint


def load(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model (eval mode) from a formers checkpoint folder, a run directory or a Hugging Face folder."""
    folder = resolve_checkpoint(path)
    data = read_config(folder)
    if "family" not in data:  # a Hugging Face config.json names its model_type instead
        return hf.load_hf(folder).to(device)
    try:
        config = model_config_from_dict(data, where=f"{folder / CONFIG_FILE}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return load_model_weights(build_model(config), folder).to(device).eval()


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer stored beside a checkpoint's weights (a Hugging Face folder's too)."""
    folder = resolve_checkpoint(path)
    if "family" not in read_config(folder):
        return hf.load_hf_tokenizer(folder)
    return Tokenizer.load(folder)
