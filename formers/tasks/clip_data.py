"""Data for the clip task: captioned image batches, zero-shot probes and a retrieval set.

Every data source the task knows gives the same four things (`ClipData`): a resumable source of
training pairs, fixed validation pairs, zero-shot probes (images with labels, and the class names
and prompt templates that describe them) and a retrieval set (images, one caption each, and which
captions are right for which image). Batches carry `group_ids`: pairs that share one are
interchangeable (the same class, or the same objects), and the contrastive loss does not count them
as negatives of each other.

Labelled image sets (Fashion-MNIST, Digits) become captioned ones by putting the class name into a
template drawn per image ("a photo of a {}."), as CLIP's zero-shot prompts do the other way round.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import torch

from formers.adapt.data import padded
from formers.config import Config, check
from formers.data.batches import step_seed
from formers.data.images import Augment, ImageBatches, ImageSet, load_image_dataset
from formers.data.tokenizers import Tokenizer
from formers.errors import DataError

CAPTION_TEMPLATES = [
    "a photo of a {}.", "a picture of a {}.", "a black and white photo of a {}.", "a small photo of a {}.",
    "a low resolution photo of a {}.", "a grey photo of the {}.", "an image of a {}.", "a {}.",
]
# Zero-shot prompts never used as training captions (the first two are CLIP's own, from its ImageNet set)
PROMPT_TEMPLATES = ["a blurry photo of a {}.", "a close-up photo of the {}.", "this is a {}.",
                    "a cropped photo of a {}."]


class CaptionEncoder:
    """Texts -> right-padded (input_ids, attention_mask), with the specials the text tower expects.

    A Hugging Face tokenizer adds its own ([CLS] ... [SEP] for MiniLM) through its post-processor,
    which `Tokenizer.encode` skips today (issue 12 changes that; this then becomes `encode`). Our own
    tokenizers have none, so the end-of-text token a causal tower pools at is appended. Decided once,
    from the tokenizer, when the encoder is built."""

    def __init__(self, tokenizer: Tokenizer, max_len: int | None = None) -> None:
        self.tokenizer, self.max_len = tokenizer, max_len
        own_specials = tokenizer.backend.post_processor is not None
        if not own_specials and tokenizer.eos_id is None:
            raise DataError("captions need an end-of-text token for the text tower to pool at; this tokenizer has "
                            "neither a post-processor nor an EOS token")
        self.suffix = [] if own_specials else [tokenizer.eos_id]

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        rows = [e.ids + self.suffix for e in self.tokenizer.backend.encode_batch(list(texts), add_special_tokens=True)]
        longest = max(map(len, rows), default=0)
        if self.max_len is not None and longest > self.max_len:
            raise DataError(f"a caption of {longest} tokens exceeds the text tower's max_seq_len={self.max_len}; "
                            "shorten the templates or raise the text tower's max_seq_len")
        return rows

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = padded(self.ids(texts), self.tokenizer.pad_id or 0)
        return batch["input_ids"], batch["attention_mask"]  # (B, T) each


@dataclasses.dataclass
class ZeroShotProbe:
    """Images whose labels index `classes`; a class is described by its name in each of `templates`."""

    name: str
    pixel_values: torch.Tensor  # (N, C, H, W) normalised
    labels: torch.Tensor  # (N,)
    classes: list[str]
    templates: list[str]


@dataclasses.dataclass
class RetrievalSet:
    pixel_values: torch.Tensor  # (N, C, H, W)
    captions: list[str]  # N: caption i was written for image i
    positives: torch.Tensor  # (N, N) bool: caption j is right for image i


@dataclasses.dataclass
class ClipData:
    train_source: Any  # next_batch() -> {pixel_values, input_ids, attention_mask, group_ids[, image_ids]}
    val_batches: list[dict]
    probes: list[ZeroShotProbe]
    retrieval: RetrievalSet


def caption_batch(pixel_values: torch.Tensor, captions: list[str], group_ids: torch.Tensor,
                  encode: CaptionEncoder) -> dict[str, torch.Tensor]:
    ids, mask = encode(captions)
    return {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask, "group_ids": group_ids}


# ---- labelled image sets ------------------------------------------------------------------------------------------
@dataclasses.dataclass(kw_only=True)
class LabelledCaptionsConfig(Config):
    dataset: Literal["fashion_mnist", "digits"] = "fashion_mnist"
    templates: list[str] = dataclasses.field(default_factory=lambda: list(CAPTION_TEMPLATES))  # training captions
    prompts: list[str] = dataclasses.field(default_factory=lambda: list(PROMPT_TEMPLATES))  # zero-shot prompts
    train_limit: int | None = None  # keep the first N training images (quick runs)
    test_limit: int | None = None  # evaluate on the first N test images
    pad: int = 0  # augmentation: random translation by up to `pad` pixels (pad, then crop back)
    flip: bool = False  # augmentation: mirror left-right half the time (fine for clothing, wrong for digits)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("templates", "prompts"):
            bad = [t for t in getattr(self, name) if "{}" not in t]
            check(getattr(self, name) and not bad, f"LabelledCaptionsConfig.{name}", getattr(self, name),
                  "a non-empty list of templates, each with '{}' where the class name goes")
        check(self.pad >= 0, "LabelledCaptionsConfig.pad", self.pad, "an int >= 0")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            check(value is None or value > 0, f"LabelledCaptionsConfig.{name}", value, "a positive int or null")


def _fill(templates: Sequence[str], classes: Sequence[str], labels: torch.Tensor, g: torch.Generator) -> list[str]:
    choice = torch.randint(len(templates), (len(labels),), generator=g).tolist()
    return [templates[c].format(classes[int(y)]) for c, y in zip(choice, labels, strict=True)]


class CaptionedImages:
    """Shuffled epochs of labelled images, each with a caption drawn from the templates; group = class.

    Images come from `ImageBatches` (resumable by its step counter); the templates of step n are drawn
    from a generator seeded by (seed, n), so the resume state is still that one counter."""

    def __init__(self, data: ImageSet, templates: Sequence[str], encode: CaptionEncoder, *, batch_size: int,
                 seed: int, augment: Augment | None = None) -> None:
        self.images = ImageBatches(data, batch_size=batch_size, seed=seed, augment=augment)
        self.classes, self.templates, self.encode, self.seed = data.classes, list(templates), encode, seed

    def next_batch(self) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(step_seed(self.seed, self.images.step, 1))  # not the augmentation's stream
        batch = self.images.next_batch()
        captions = _fill(self.templates, self.classes, batch["labels"], g)
        return caption_batch(batch["pixel_values"], captions, batch["labels"], self.encode)

    def state_dict(self) -> dict:
        return self.images.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.images.load_state_dict(state)


def labelled_data(config: LabelledCaptionsConfig, encode: CaptionEncoder, *, batch_size: int, seed: int,
                  eval_batches: int, retrieval_pairs: int) -> ClipData:
    """Training captions from the train split; validation, probes and retrieval from the test split."""
    train = load_image_dataset(config.dataset, "train")
    test = load_image_dataset(config.dataset, "test")
    if config.train_limit is not None:
        train = train.subset(slice(0, config.train_limit))
    if config.test_limit is not None:
        test = test.subset(slice(0, config.test_limit))
    pixels = test.normalize(test.images)  # (N, C, H, W)
    captions = _fill(config.templates, test.classes, test.labels, torch.Generator().manual_seed(seed))
    n_val = min(len(test), eval_batches * batch_size)
    val = [caption_batch(pixels[s:s + batch_size], captions[s:s + batch_size], test.labels[s:s + batch_size], encode)
           for s in range(0, n_val, batch_size)]
    probe = ZeroShotProbe("class", pixels, test.labels, list(test.classes), list(config.prompts))
    n = min(retrieval_pairs, len(test))
    same_class = test.labels[:n, None] == test.labels[None, :n]  # (n, n): any caption of the class is right
    return ClipData(
        train_source=CaptionedImages(train, config.templates, encode, batch_size=batch_size, seed=seed,
                                     augment=Augment(pad=config.pad, flip=config.flip)),
        val_batches=val, probes=[probe], retrieval=RetrievalSet(pixels[:n], captions[:n], same_class),
    )
