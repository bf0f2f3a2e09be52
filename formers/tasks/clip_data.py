"""Data for the clip task: captioned image batches, zero-shot probes and a retrieval set.

Every source the task knows gives the same things (`ClipData`): a resumable source of training pairs,
fixed validation pairs, zero-shot probes (images with labels, and the class names and prompt
templates that describe them) and a retrieval set (images, one caption each, and which captions are
right for which image). Batches mark interchangeable pairs (`group_ids`, and for Shapes `matches`:
caption j is true of image i), which the contrastive loss does not count as negatives.

  shapes    Shapes captions (formers.data.shapes). Probes: single-object images of the held-out colour x
            shape pairs (never shown in training), classified by colour and by shape; the same for seen
            pairs. Retrieval: held-out images against their captions, right when the caption is true.
  labelled  a labelled image set (Fashion-MNIST, Digits) captioned by putting the class name into a
            template drawn per image ("a photo of a {}."), CLIP's zero-shot prompts turned around.
            Probe: the test split's classes, with prompts never used as captions.

Texts are encoded as `wrap[0] text wrap[1]` ([BOS] ... [EOS] for a causal tower that pools at the
end, [CLS] ... [SEP] for a BERT such as MiniLM) by `encode_texts`, right-padded. Under torchrun each
rank takes its slice of every global batch; the contrastive loss then compares a rank's own pairs
(features are not gathered across ranks, as CLIP does at scale).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from formers.config import Config, check
from formers.data.batches import step_seed
from formers.data.images import Augment, ImageBatches, ImageSet, load_image_dataset
from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_batches import CaptionBatches, encode_texts
from formers.training import distributed

Encode = Callable[[Sequence[str]], tuple[torch.Tensor, torch.Tensor]]  # texts -> (input_ids, attention_mask)

CAPTION_TEMPLATES = [
    "a photo of a {}.", "a picture of a {}.", "a black and white photo of a {}.", "a small photo of a {}.",
    "a low resolution photo of a {}.", "a grey photo of the {}.", "an image of a {}.", "a {}.",
]
# Zero-shot prompts never used as training captions (the first two are CLIP's own, from its ImageNet set)
PROMPT_TEMPLATES = ["a blurry photo of a {}.", "a close-up photo of the {}.", "this is a {}.",
                    "a cropped photo of a {}."]


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
    input_ids: torch.Tensor  # (N, T): caption i was written for image i
    attention_mask: torch.Tensor  # (N, T)
    positives: torch.Tensor  # (N, N) bool: caption j is right for image i
    captions: list[str]


@dataclasses.dataclass
class ClipData:
    encode: Encode
    train_source: Any  # next_batch() -> {pixel_values, input_ids, attention_mask, group_ids, ...}
    val_batches: list[dict]
    probes: list[ZeroShotProbe]
    retrieval: RetrievalSet


def text_encoder(tokenizer, wrap: Sequence[str]) -> Encode:
    return functools.partial(encode_texts, tokenizer, wrap=(wrap[0], wrap[1]))


# ---- Shapes ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass(kw_only=True)
class ShapesCaptionsConfig(Config):
    shapes: ShapesConfig = dataclasses.field(default_factory=ShapesConfig)
    n_images: int | None = None  # training images: None = fresh images every step, N = a fixed set of N, cached
    captions_per_image: int = 1  # k > 1 puts each image in k rows with k captions (matches mark them)
    probe_images: int = 500  # single-object images per zero-shot probe
    # attributes whose one-changed hard negatives join each training and validation batch (NegCLIP); [] = none
    hard_negatives: list[Literal["colour", "shape", "size", "position"]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.probe_images >= 10, "ShapesCaptionsConfig.probe_images", self.probe_images, "at least 10")


def attribute_probes(data: Shapes, train: Shapes, n: int, suffix: str) -> list[ZeroShotProbe]:
    """Colour and shape of n single-object images of `data`. A class's prompts name it with every value
    of the other attribute ("a red circle", "a red square", ...), so the ensemble marginalises it out."""
    cfg = data.config
    rendered = data.render(range(n))
    objects = [objs[0] for objs, _ in rendered.scenes]
    pixels = train.normalize(rendered.images)  # by the training images' statistics, as in training
    colours = torch.tensor([cfg.colours.index(o.colour) for o in objects])
    shapes = torch.tensor([cfg.shapes.index(o.shape) for o in objects])
    return [
        ZeroShotProbe(f"colour{suffix}", pixels, colours, list(cfg.colours), [f"a {{}} {s}" for s in cfg.shapes]),
        ZeroShotProbe(f"shape{suffix}", pixels, shapes, list(cfg.shapes), [f"a {c} {{}}" for c in cfg.colours]),
    ]


def shapes_data(config: ShapesCaptionsConfig, tokenizer, wrap: Sequence[str], *, batch_size: int, seed: int,
                eval_batches: int, retrieval_pairs: int) -> ClipData:
    """Training pairs from the train split; validation from the test split (the same distribution);
    probes and retrieval from the held-out combinations."""
    cfg = config.shapes
    train = Shapes(cfg, split="train", seed=seed)
    common = dict(wrap=(wrap[0], wrap[1]), captions_per_image=config.captions_per_image,
                  hard_negatives=config.hard_negatives)
    source = CaptionBatches(train, tokenizer, batch_size=batch_size, seed=seed, n_images=config.n_images,
                            rank=distributed.rank(), world_size=distributed.world_size(), **common)
    test = CaptionBatches(Shapes(cfg, split="test", seed=seed), tokenizer, batch_size=batch_size, seed=seed, **common)
    held_out = CaptionBatches(Shapes(cfg, split="heldout", seed=seed), tokenizer, batch_size=batch_size, seed=seed,
                              wrap=(wrap[0], wrap[1]))
    pairs = held_out.fixed_batches(retrieval_pairs, batch_size=retrieval_pairs)[0]  # one batch: matches (N, N)
    single = cfg.replace(min_objects=1, max_objects=1)
    probes = [*attribute_probes(Shapes(single, split="heldout", seed=seed), train, config.probe_images, ""),
              *attribute_probes(Shapes(single, split="test", seed=seed), train, config.probe_images, "_seen")]
    captions = [tokenizer.decode(row[m.bool()].tolist()) for row, m in zip(pairs["input_ids"],
                                                                           pairs["attention_mask"], strict=True)]
    return ClipData(
        encode=text_encoder(tokenizer, wrap), train_source=source,
        val_batches=test.fixed_batches(eval_batches * batch_size), probes=probes,
        retrieval=RetrievalSet(pairs["pixel_values"], pairs["input_ids"], pairs["attention_mask"], pairs["matches"],
                               captions),
    )


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

    def texts(self, classes: Sequence[str]) -> list[str]:
        """Every caption and prompt this config can write (what a word tokenizer must know)."""
        return [t.format(c) for t in [*self.templates, *self.prompts] for c in classes]


def _fill(templates: Sequence[str], classes: Sequence[str], labels: torch.Tensor, g: torch.Generator) -> list[str]:
    choice = torch.randint(len(templates), (len(labels),), generator=g).tolist()
    return [templates[c].format(classes[int(y)]) for c, y in zip(choice, labels, strict=True)]


class CaptionedImages:
    """Shuffled epochs of labelled images, each with a caption drawn from the templates; group = class.

    Images come from `ImageBatches` (resumable by its step counter); the templates of step n are drawn
    from a generator seeded by (seed, n), so the resume state is still that one counter."""

    def __init__(self, data: ImageSet, templates: Sequence[str], encode: Encode, *, batch_size: int,
                 seed: int, augment: Augment | None = None, rank: int = 0, world_size: int = 1) -> None:
        self.images = ImageBatches(data, batch_size=batch_size, seed=seed, augment=augment, rank=rank,
                                   world_size=world_size)
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


def caption_batch(pixel_values: torch.Tensor, captions: list[str], group_ids: torch.Tensor,
                  encode: Encode) -> dict[str, torch.Tensor]:
    ids, mask = encode(captions)
    return {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask, "group_ids": group_ids}


def labelled_data(config: LabelledCaptionsConfig, tokenizer, wrap: Sequence[str], *, batch_size: int, seed: int,
                  eval_batches: int, retrieval_pairs: int) -> ClipData:
    """Training captions from the train split; validation, probes and retrieval from the test split."""
    encode = text_encoder(tokenizer, wrap)
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
    n = min(retrieval_pairs, len(test))
    ids, mask = encode(captions[:n])
    same_class = test.labels[:n, None] == test.labels[None, :n]  # (n, n): any caption of the class is right
    return ClipData(
        encode=encode, val_batches=val,
        train_source=CaptionedImages(train, config.templates, encode, batch_size=batch_size, seed=seed,
                                     augment=Augment(pad=config.pad, flip=config.flip), rank=distributed.rank(),
                                     world_size=distributed.world_size()),
        probes=[ZeroShotProbe("class", pixels, test.labels, list(test.classes), list(config.prompts))],
        retrieval=RetrievalSet(pixels[:n], ids, mask, same_class, captions[:n]),
    )
