"""The image the viewer feeds a checkpoint: a file resized and normalised as the model was trained, or,
for a model trained on Shapes and no file given, a Shapes test image (no download, nothing to prepare).

Pixels are normalised by the training data's per-channel statistics when the checkpoint's recipe names
Shapes data (as the tasks do); otherwise by the image's own (the best guess without the training set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from formers.config import Config
from formers.data.images import channel_stats, normalize_pixels
from formers.data.shapes import Shapes, ShapesConfig
from formers.errors import CheckpointError, ConfigError, ImageInputError
from formers.interpret.views import trunk_config
from formers.tasks.base import checkpoint_recipe


def image_config(model_config: Config) -> Config | None:
    """The config of the image tower the model reads pixels with (the model's own for a ViT), or None."""
    model_config = trunk_config(model_config)
    if model_config.family == "vit":
        return model_config
    tower = getattr(model_config, "image", None)  # fusion models and CLIP name their tower `image`
    return tower if tower is not None and tower.family == "vit" else None


def recipe_shapes(checkpoint: str | Path) -> ShapesConfig | None:
    """The Shapes data config of the checkpoint's recipe (extra.json), if it trained on Shapes."""
    try:
        recipe = checkpoint_recipe(checkpoint)
    except CheckpointError:  # a checkpoint saved by hand (formers.save) has no recipe: nothing to say about Shapes
        return None
    shapes = getattr(recipe.objective, "shapes", None)
    return shapes if isinstance(shapes, ShapesConfig) else None


def read_image(path: str | Path) -> torch.Tensor:
    """A PNG or JPEG file -> uint8 (3, H, W) (grey replicated, alpha dropped)."""
    from matplotlib.image import imread  # matplotlib's reader (Pillow underneath): no extra dependency

    path = Path(path)
    if not path.is_file():
        raise ImageInputError(f"image file {str(path)!r} does not exist")
    try:
        array = np.asarray(imread(path))
    except Exception as e:  # Pillow raises several types for unreadable files
        raise ImageInputError(f"{str(path)!r} is not a readable PNG or JPEG image ({e})") from None
    if array.dtype != np.uint8:  # PNGs read as floats in [0, 1]
        array = np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3] if array.shape[-1] >= 3 else np.repeat(array[..., :1], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


def fit_image(image: torch.Tensor, n_channels: int, size: int) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (1, n_channels, size, size): resized (antialiased), grey if the model is."""
    x = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if n_channels == 1:
        x = x.mean(dim=1, keepdim=True)
    elif n_channels != 3:
        raise ImageInputError(f"the model reads {n_channels}-channel images; the viewer feeds grey or RGB")
    return x.round().clamp(0, 255).to(torch.uint8)


def load_pixels(checkpoint: str | Path, model_config: Config, image_path: str | None) -> torch.Tensor | None:
    """(1, C, S, S) normalised pixels for the checkpoint's image tower, or None for a text-only model."""
    tower = image_config(model_config)
    if tower is None:
        if image_path is not None:
            raise ImageInputError(f"a {model_config.family} model reads no pixels (no ViT image tower); "
                                  "leave out --image")
        return None
    shapes = recipe_shapes(checkpoint)
    if image_path is None:
        if shapes is None:
            raise ConfigError(f"a {model_config.family} model reads an image: give one with --image FILE")
        image = Shapes(shapes, split="test").sample(0).image  # (3, H, W) uint8
    else:
        image = read_image(image_path)
    pixels = fit_image(image, tower.n_channels, tower.image_size)
    stats = Shapes(shapes, split="train").stats if shapes is not None else channel_stats(pixels)
    return normalize_pixels(pixels, *stats)
