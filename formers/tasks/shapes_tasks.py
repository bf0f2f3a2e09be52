"""What the Shapes vision-language tasks (vqa, image_text_matching, captioning) share: the data section of
their objective configs, the word tokenizer, and fitting a recipe's model config to the data.

Every task trains on the `train` split and evaluates on two others: `test` (the training distribution,
new images) and `heldout` (every image holds a colour-shape pair never seen in training): the second says
whether the model composes attributes or memorised combinations.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from formers.config import Config, check
from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_text import shapes_tokenizer
from formers.data.tokenizers import Tokenizer
from formers.errors import ConfigError

EVAL_SPLITS = ("test", "heldout")


@dataclasses.dataclass(kw_only=True)
class ShapesTaskConfig(Config):
    shapes: ShapesConfig = dataclasses.field(default_factory=ShapesConfig)
    n_train_images: int | None = None  # a fixed training set of this many images; None = fresh images every step
    eval_images: int = 512  # images of each evaluation split (test, heldout)
    data_seed: int = 0  # which Shapes images (independent of the trainer's seed)

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        check(self.n_train_images is None or self.n_train_images > 0, f"{name}.n_train_images",
              self.n_train_images, "a positive int or null")
        check(self.eval_images > 0, f"{name}.eval_images", self.eval_images, "a positive int")


def shapes_split(config: ShapesTaskConfig, split: str) -> Shapes:
    return Shapes(config.shapes, split=split, seed=config.data_seed)


def task_tokenizer() -> Tokenizer:
    return shapes_tokenizer()


def _fit_text(text: Any, vocab_size: int) -> Any:
    """A text config (object or mapping) with the tokenizer's vocabulary."""
    if isinstance(text, dict):
        return {**text, "vocab_size": vocab_size}
    return text.replace(vocab_size=vocab_size)


def fit_model(config: Config, vocab_size: int, n_outputs: int | None = None) -> Config:
    """The recipe's model config with the data's vocabulary (and output count, for classifier heads):
    a head over a trunk (sequence_classifier), a late-fusion model (its text tower) or a bare trunk."""
    family = getattr(config, "family", None)
    outputs = {} if n_outputs is None else {"n_outputs": n_outputs}
    if family == "sequence_classifier":
        return config.replace(trunk=_fit_text(config.trunk, vocab_size), **outputs)
    if family == "late_fusion" and config.clip is not None:
        clip = config.clip.replace(text=_fit_text(config.clip.text, vocab_size))
        return config.replace(clip=clip, **outputs)
    if family == "late_fusion":
        return config.replace(text=_fit_text(config.text, vocab_size), **outputs)
    if hasattr(config, "vocab_size"):
        if n_outputs is not None:
            raise ConfigError(f"model.family={family!r} has no classifier head; use family sequence_classifier "
                              "with this model as its trunk, or late_fusion")
        return config.replace(vocab_size=vocab_size)
    raise ConfigError(f"model.family={family!r} reads no text; a Shapes task needs a text-reading model")
