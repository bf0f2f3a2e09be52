"""Shapes: a seeded procedural image-text dataset of coloured shapes on a 3x3 grid (no download).

Each image holds `min_objects`..`max_objects` objects, one per grid cell (so they never overlap), each
with four attributes: a shape (circle, square, triangle, cross, star, diamond, ring, heart), a colour
(red, orange, yellow, green, cyan, blue, purple, white), a size (small, large) and a position (the cell:
top left, top, top right, left, center, right, bottom left, bottom, bottom right). No two objects of an
image share both colour and shape, so "the red circle" always names one object. Around each image:

  captions    `n_captions` descriptions; the first is canonical ("a small red circle at the top left
              and a large blue square in the center"), the others vary template, synonyms, order and
              which attributes they state ("red disc, upper left")
  negatives   per caption, the same caption with one attribute of one object changed (which recorded)
  questions   one per type: colour, shape, size, count, position, yes/no; answers from ANSWERS
  masks/boxes per object: bool (H, W) coverage >= 0.5, and its tight (x0, y0, x1, y1) box

Splits, for compositional zero-shot: some colour-shape pairs are *held out* (`ShapesConfig.heldout`).
  train    objects use only pairs that are not held out; its text never names a held-out pair
  test     the same distribution as train from another stream of images (in-distribution evaluation)
  heldout  every image holds at least one object of a held-out pair; the others use any pair
Every colour and every shape appears in training (only its combination with some partners is held
out), so a model can compose a held-out pair from attributes it has seen.

Sample i of a split is a pure function of (config, seed, split, i): any slice can be generated on
demand, in any order, on any process. Rendering is vectorised over a batch (shapes_draw), anti-aliased
by 4x4 supersampling by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import random
import textwrap
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor

from formers.config import Config, check
from formers.data.batches import step_seed
from formers.data.images import ImageSet, channel_stats, normalize_pixels
from formers.data.shapes_draw import (
    BACKGROUNDS,
    COLOURS,
    GRID,
    POSITIONS,
    SHAPES,
    SIZES,
    ShapeObject,
    background,
    place,
    render,
)
from formers.data.shapes_text import (
    COUNT_WORDS,
    Caption,
    HardNegative,
    Language,
    Question,
    hard_negative,
    make_caption,
    make_questions,
)
from formers.errors import DataError

SPLITS = ("train", "test", "heldout")
MIN_CELL = 8  # least pixels per grid cell; at 8 (24x24 images) small diamonds and hearts blur, at 32x32 none do


def default_heldout(colours: Sequence[str], shapes: Sequence[str]) -> list[str]:
    """One held-out shape per colour: colour i with shape (step * i + 2) mod n, the step the first number
    from 3 up that is prime to n, so that the held-out shapes spread over all n. With the 8 colours and
    8 shapes every colour and every shape is held out exactly once: 8 of the 64 pairs (red triangle,
    orange diamond, yellow circle, green cross, cyan ring, blue square, purple star, white heart).
    No pairs when there is a single colour or shape (nothing to recombine)."""
    n = len(shapes)
    if len(colours) < 2 or n < 2:
        return []
    step = next(s for s in range(3, 3 + n) if math.gcd(s, n) == 1)
    return [f"{c} {shapes[(step * i + 2) % n]}" for i, c in enumerate(colours)]


@dataclasses.dataclass(kw_only=True)
class ShapesConfig(Config):
    image_size: int = 32  # pixels per side; each of the 3x3 cells gets image_size / 3
    min_objects: int = 1
    max_objects: int = 3  # at most 9, one per cell
    shapes: list[str] = dataclasses.field(default_factory=lambda: list(SHAPES))
    colours: list[str] = dataclasses.field(default_factory=lambda: list(COLOURS))
    # "colour shape" pairs never shown in train/test; null = default_heldout(colours, shapes); [] = none
    heldout: list[str] | None = None
    background: Literal["plain", "noise", "texture", "mixed"] = "plain"  # mixed: each image draws one
    antialias: int = 4  # sub-pixel samples per side (1 = hard edges, one sample at each pixel's centre)
    jitter: float = 1.0  # how far objects move inside their cell, as a fraction of the room they have
    n_captions: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        name = "ShapesConfig"
        check(self.image_size >= GRID * MIN_CELL, f"{name}.image_size", self.image_size,
              f">= {GRID * MIN_CELL}: the {GRID}x{GRID} grid needs {MIN_CELL} pixels per cell")
        check(self.min_objects >= 1, f"{name}.min_objects", self.min_objects, ">= 1")
        check(self.min_objects <= self.max_objects <= GRID * GRID, f"{name}.max_objects", self.max_objects,
              f"between min_objects={self.min_objects} and {GRID * GRID} (one object per grid cell)")
        for field, known in (("shapes", SHAPES), ("colours", COLOURS)):
            values = getattr(self, field)
            check(bool(values) and set(values) <= set(known) and len(set(values)) == len(values),
                  f"{name}.{field}", values, f"a non-empty list without repeats from {list(known)}")
        pairs = len(self.colours) * len(self.shapes)
        check(self.max_objects <= pairs, f"{name}.max_objects", self.max_objects,
              f"at most {pairs} = colours x shapes (no two objects of an image share colour and shape)")
        check(1 <= self.antialias <= 16, f"{name}.antialias", self.antialias, "1 to 16 samples per side")
        check(0.0 <= self.jitter <= 1.0, f"{name}.jitter", self.jitter, "a fraction in [0, 1]")
        check(self.n_captions >= 1, f"{name}.n_captions", self.n_captions, ">= 1")
        self._check_heldout()

    def _check_heldout(self) -> None:
        where = "ShapesConfig.heldout"
        for pair in self.heldout or []:
            words = pair.split()
            check(len(words) == 2 and words[0] in self.colours and words[1] in self.shapes, where, pair,
                  f"'colour shape' pairs with a colour of {self.colours} and a shape of {self.shapes}")
        check(len(set(self.heldout or [])) == len(self.heldout or []), where, self.heldout, "pairs without repeats")
        train = self.train_pairs
        lost = [c for c in self.colours if all(c != p[0] for p in train)] + \
               [s for s in self.shapes if all(s != p[1] for p in train)]
        check(not lost, where, self.heldout, f"pairs that leave every colour and shape some training pair "
              f"(these would never be trained: {lost})")
        check(len(train) >= self.max_objects, where, self.heldout,
              f"to leave at least max_objects={self.max_objects} training pairs (objects of an image differ)")

    @property
    def heldout_pairs(self) -> frozenset[tuple[str, str]]:
        names = default_heldout(self.colours, self.shapes) if self.heldout is None else self.heldout
        return frozenset(tuple(p.split()) for p in names)

    @property
    def all_pairs(self) -> list[tuple[str, str]]:
        return [(c, s) for c in self.colours for s in self.shapes]

    @property
    def train_pairs(self) -> list[tuple[str, str]]:
        return [p for p in self.all_pairs if p not in self.heldout_pairs]


@dataclasses.dataclass(frozen=True)
class ShapeText:
    """The language of one image: captions (the first canonical), their hard negatives, questions."""

    captions: list[Caption]
    negatives: list[HardNegative]  # negatives[j] alters captions[j]
    questions: list[Question]  # one per QUESTION_TYPES, in that order


@dataclasses.dataclass(frozen=True)
class ShapeSample:
    index: int
    split: str
    objects: tuple[ShapeObject, ...]  # in reading order of their cells
    background: str
    image: Tensor  # uint8 (3, H, W)
    masks: Tensor  # bool (n_objects, H, W)
    boxes: Tensor  # long (n_objects, 4) as (x0, y0, x1, y1), x1/y1 exclusive
    text: ShapeText

    @property
    def captions(self) -> list[str]:
        return [c.text for c in self.text.captions]


class Rendered(NamedTuple):
    images: Tensor  # uint8 (N, 3, H, W)
    masks: list[Tensor]  # per image, bool (n_objects, H, W): the pixels an object covers at least half of
    boxes: list[Tensor]  # per image, long (n_objects, 4): (x0, y0, x1, y1) tight around the mask, x1/y1 exclusive
    scenes: list[tuple[tuple[ShapeObject, ...], str]]  # per image, its objects and background kind


def attribute_set_id(objects: Sequence[ShapeObject]) -> int:
    """An id equal for two images exactly when they hold the same objects (colour, shape, size, position)."""
    return step_seed(*sorted(",".join(o.attributes()) for o in objects))


class Shapes:
    """One split of the Shapes dataset, unbounded: index i >= 0 gives sample i (see the module doc)."""

    def __init__(self, config: ShapesConfig | None = None, *, split: str = "train", seed: int = 0) -> None:
        self.config = config or ShapesConfig()
        if split not in SPLITS:
            raise DataError(f"Shapes split={split!r} is not known; expected one of {SPLITS}")
        if split == "heldout" and not self.config.heldout_pairs:
            raise DataError("the heldout split needs held-out pairs, but ShapesConfig.heldout is empty; "
                            "name some 'colour shape' pairs (or leave it null for the default ones)")
        self.split, self.seed = split, seed
        # computed once: scene() draws from them for every image
        self._heldout, self._all, self._train = (sorted(self.config.heldout_pairs), self.config.all_pairs,
                                                 self.config.train_pairs)
        allowed = self._all if split == "heldout" else self._train
        self.language = Language(tuple(self.config.colours), tuple(self.config.shapes), frozenset(allowed))

    def _seed(self, i: int, stream: int) -> int:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise DataError(f"Shapes index {i!r} must be a non-negative int")
        return step_seed(self.seed, SPLITS.index(self.split), i, stream)

    def scene(self, i: int) -> tuple[tuple[ShapeObject, ...], str]:
        """The objects of image i (reading order) and its background kind; cheap (no pixels)."""
        cfg, rng = self.config, random.Random(self._seed(i, 0))
        n = rng.randint(cfg.min_objects, cfg.max_objects)
        cells = rng.sample(POSITIONS, n)
        if self.split == "heldout":
            first = rng.choice(self._heldout)
            pairs = [first, *rng.sample([p for p in self._all if p != first], n - 1)]
        else:
            pairs = rng.sample(self._train, n)
        objects = []
        for (colour, shape), cell in zip(pairs, cells, strict=True):
            size = rng.choice(SIZES)
            jitter = (rng.uniform(-1, 1) * cfg.jitter, rng.uniform(-1, 1) * cfg.jitter)
            objects.append(ShapeObject(shape, colour, size, cell, *place(cfg.image_size, cell, size, jitter)))
        kind = rng.choice(BACKGROUNDS) if cfg.background == "mixed" else cfg.background
        return tuple(sorted(objects, key=lambda o: POSITIONS.index(o.position))), kind

    # Captions, negatives and questions each come from their own seeded stream, so each can be made
    # alone (a caption batch needs no questions) and equals the one inside text().
    def captions(self, i: int, objects: Sequence[ShapeObject] | None = None) -> list[Caption]:
        objects = self.scene(i)[0] if objects is None else objects
        rng = random.Random(self._seed(i, 2))
        return [make_caption(objects, None if j == 0 else rng) for j in range(self.config.n_captions)]

    def negatives(self, i: int, objects: Sequence[ShapeObject], captions: Sequence[Caption],
                  attributes: Collection[str] | None = None) -> list[HardNegative]:
        """One hard negative per caption; `attributes` limits what may change (see hard_negative)."""
        rng = random.Random(self._seed(i, 3))
        return [hard_negative(objects, c, j, self.language, rng, attributes) for j, c in enumerate(captions)]

    def questions(self, i: int, objects: Sequence[ShapeObject] | None = None) -> list[Question]:
        objects = self.scene(i)[0] if objects is None else objects
        return make_questions(objects, self.language, random.Random(self._seed(i, 4)))

    def text(self, i: int, objects: Sequence[ShapeObject] | None = None) -> ShapeText:
        """Captions, hard negatives and questions of image i."""
        objects = self.scene(i)[0] if objects is None else objects
        captions = self.captions(i, objects)
        return ShapeText(captions, self.negatives(i, objects, captions), self.questions(i, objects))

    def render(self, indices: Sequence[int]) -> Rendered:
        """The images `indices`, their masks and boxes (see Rendered), and their scenes."""
        indices = [int(i) for i in indices]
        scenes = [self.scene(i) for i in indices]
        size = self.config.image_size
        backs = np.zeros((len(indices), 3, size, size), dtype=np.float32)  # (N, 3, H, W)
        for row, (i, (_, kind)) in enumerate(zip(indices, scenes, strict=True)):
            backs[row] = background(kind, size, np.random.default_rng(self._seed(i, 1)))
        images, masks, boxes = render([objs for objs, _ in scenes], backs, self.config.antialias)
        counts = [len(objs) for objs, _ in scenes]
        return Rendered(torch.from_numpy(images), list(torch.from_numpy(masks).split(counts)),
                        list(torch.from_numpy(boxes).split(counts)), scenes)

    def samples(self, indices: Sequence[int]) -> list[ShapeSample]:
        r = self.render(indices)
        return [ShapeSample(int(i), self.split, objs, kind, image, masks, boxes, self.text(int(i), objs))
                for i, (objs, kind), image, masks, boxes in zip(indices, r.scenes, r.images, r.masks, r.boxes,
                                                                strict=True)]

    def sample(self, i: int) -> ShapeSample:
        return self.samples([i])[0]

    @property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the *training* split's pixels ([0, 1] units), from its first
        STATS_IMAGES images: every split is normalised by the same numbers."""
        return _train_stats(json.dumps(self.config.to_dict(), sort_keys=True), self.seed)

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (B, 3, H, W) -> float32 normalised by the training split's stats."""
        return normalize_pixels(images, *self.stats)

    def image_set(self, n: int, label: Literal["colour", "shape", "size", "position", "count"]) -> ImageSet:
        """Images 0..n-1 as a labelled ImageSet (for the classifiers of images.py): the single object's
        colour/shape/size/position (needs max_objects == 1), or the number of objects."""
        cfg = self.config
        if label != "count" and cfg.max_objects != 1:
            raise DataError(f"label={label!r} needs one object per image (max_objects=1, not {cfg.max_objects}); "
                            "or use label='count'")
        classes = {"colour": cfg.colours, "shape": cfg.shapes, "size": list(SIZES), "position": list(POSITIONS),
                   "count": list(COUNT_WORDS[cfg.min_objects : cfg.max_objects + 1])}.get(label)
        if classes is None:
            raise DataError(f"label={label!r} is not known; expected colour, shape, size, position or count")
        images, _, _, scenes = self.render(range(n))
        values = [COUNT_WORDS[len(objs)] if label == "count" else getattr(objs[0], label) for objs, _ in scenes]
        labels = torch.tensor([classes.index(v) for v in values], dtype=torch.long)
        return ImageSet(images, labels, tuple(classes), *self.stats)


STATS_IMAGES = 512  # the mean and std come within 0.005 of those of 4,096 images (measured)


@functools.lru_cache(maxsize=32)
def _train_stats(config_json: str, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    data = Shapes(ShapesConfig.from_dict(json.loads(config_json)), split="train", seed=seed)
    return channel_stats(data.render(range(STATS_IMAGES)).images)


def save_grid(data: Shapes, path: str | Path, *, n: int = 16, columns: int = 4, start: int = 0) -> Path:
    """Write a PNG of samples start..start+n-1, each titled by its canonical caption (wrapped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.7 * columns, 3.8 * rows), squeeze=False)
    heldout = data.config.heldout_pairs
    for ax, sample in zip(axes.flat, data.samples(range(start, start + n)), strict=False):
        ax.imshow(sample.image.permute(1, 2, 0).numpy(), interpolation="nearest")
        title = textwrap.fill(sample.captions[0], 32)
        unseen = sorted({f"{o.colour} {o.shape}" for o in sample.objects if (o.colour, o.shape) in heldout})
        if unseen:
            title += "\n(held out: " + ", ".join(unseen) + ")"
        ax.set_title(title, fontsize=7.5)
    for ax in axes.flat:
        ax.axis("off")
    cfg = data.config
    fig.suptitle(f"Shapes, split={data.split}, seed={data.seed}, {cfg.image_size}x{cfg.image_size}, "
                 f"background={cfg.background}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def generation_speed(data: Shapes, n: int = 2000, batch: int = 256) -> dict[str, float]:
    """Images/s for pixels alone (Shapes.render) and for whole samples (pixels, masks, boxes, text)."""
    start = time.perf_counter()
    for s in range(0, n, batch):
        data.render(range(s, min(n, s + batch)))
    pixels = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for s in range(0, n, batch):
        data.samples(range(s, min(n, s + batch)))
    return {"images_per_s": pixels, "samples_per_s": n / (time.perf_counter() - start)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m formers.data.shapes", description=__doc__.split("\n")[0])
    parser.add_argument("--grid", help="write a PNG grid of samples with their first caption here")
    parser.add_argument("--speed", action="store_true", help="measure generation speed (images/s)")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=16, help="samples in the grid / 2000 x this for --speed")
    parser.add_argument("--config", default="{}", help='ShapesConfig fields as JSON, e.g. \'{"background": "noise"}\'')
    args = parser.parse_args(argv)
    data = Shapes(ShapesConfig.from_dict(json.loads(args.config)), split=args.split, seed=args.seed)
    if args.grid:
        print(save_grid(data, args.grid, n=args.n))
    if args.speed:
        print(json.dumps({k: round(v, 1) for k, v in generation_speed(data).items()}))


if __name__ == "__main__":
    main()
