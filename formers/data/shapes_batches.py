"""Resumable batch sources over Shapes: image-caption pairs, image-question-answer, image + hard negative.

All three follow the StepCounted contract (batches.py): the batch at step n is a pure function of
(data, seed, n), so the whole resume state is the step counter. Images come either from a fixed set
(`n_images`: shuffled epochs over images 0..n_images-1 of the split, with pixels and text cached after
first use) or, with `n_images=None`, fresh from the unbounded split (step n takes images
n*G .. (n+1)*G-1, G the global batch; nothing is cached). Under torchrun every rank draws the same
global batch of world_size * batch_size rows and keeps its slice, as ImageBatches does.

Texts are encoded as `wrap[0] text wrap[1]` ([CLS] ... [SEP] by default; ("[BOS]", "[EOS]") for a
decoder), padded on the right with the tokenizer's pad id to the batch's longest (or to `max_len`).
Any formers Tokenizer holding the wrap tokens works (the Shapes word tokenizer, MiniLM's WordPiece).

Batch keys (B rows; T text length; pixel values normalised by the training split's mean/std):

  CaptionBatches   pixel_values (B, 3, H, W) float, input_ids (B, T) long, attention_mask (B, T) long
                   (1 = token), image_ids (B,) long (index of the image in its split), group_ids (B,)
                   long (equal iff two images hold the same objects: colour, shape, size, position),
                   caption_ids (B,) long (which of the image's captions), matches (B, B) bool:
                   matches[i, j] is True when caption j is true of image i (the diagonal, two captions
                   of one image, and captions that leave out what tells two images apart); with
                   `hard_negatives`, also negative_input_ids, negative_attention_mask (B, T) (each
                   row's caption with one attribute changed, padded to the captions' T) and
                   negative_matches (B, B) bool ([i, j]: negative j is true of image i, which happens
                   when image i holds what negative j describes)
  QuestionBatches  pixel_values, input_ids, attention_mask (the question), answers (B,) long (index
                   into ANSWERS), question_types (B,) long (index into QUESTION_TYPES), image_ids
  MatchingBatches  pixel_values, input_ids, attention_mask (a true caption), negative_input_ids,
                   negative_attention_mask (the same caption with one attribute changed; both texts
                   padded to one T), negative_attributes (B,) long (index into ATTRIBUTES of what
                   changed), image_ids, group_ids, caption_ids
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from formers.data.batches import StepCounted, step_seed
from formers.data.images import epoch_indices
from formers.data.shapes import Shapes, attribute_set_id
from formers.data.shapes_draw import ShapeObject
from formers.data.shapes_text import ANSWERS, ATTRIBUTES, QUESTION_TYPES, Caption, HardNegative
from formers.data.tokenizers import Tokenizer
from formers.errors import DataError

EVAL_STREAM = -1  # step_seed component of fixed evaluation batches: never a training step


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], wrap: tuple[str, str] | None = ("[CLS]", "[SEP]"),
                 max_len: int | None = None) -> tuple[Tensor, Tensor]:
    """Texts -> (input_ids (B, T), attention_mask (B, T)), each `wrap[0] text wrap[1]`, right-padded."""
    first: list[int] = []
    last: list[int] = []
    if wrap is not None:
        first, last = [tokenizer.token_to_id(wrap[0])], [tokenizer.token_to_id(wrap[1])]
        if None in first + last:
            raise DataError(f"the tokenizer has no {wrap} tokens to wrap texts in; pass wrap=None or a pair it holds")
    bare = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    rows = [torch.tensor(first + ids + last, dtype=torch.long) for ids in bare]
    longest = max(len(r) for r in rows)
    if max_len is not None and longest > max_len:
        raise DataError(f"a text of {longest} tokens does not fit max_len={max_len}: raise max_len")
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0  # masked out either way
    if max_len is not None:
        rows.append(torch.zeros(max_len, dtype=torch.long))  # stretches the padding to max_len; dropped below
    ids = pad_sequence(rows, batch_first=True, padding_value=pad)[: len(texts)]  # (B, T)
    mask = pad_sequence([torch.ones(len(r), dtype=torch.long) for r in rows], batch_first=True)[: len(texts)]
    return ids, mask


def caption_matches(objects: Sequence[Sequence[ShapeObject]], captions: Sequence[Caption],
                    described: Sequence[Sequence[ShapeObject]] | None = None) -> Tensor:
    """(B, N) bool: [i, j] = caption j is true of image i, i.e. image i holds as many objects as caption j
    describes and they agree, as multisets, on the attributes caption j mentions. Caption j describes
    `described[j]`: by default the objects of image j it was written for (then N = B); a hard negative
    describes its image's objects with one attribute changed."""
    described = objects if described is None else described
    keys: dict[tuple, int] = {}

    def key(objs: Sequence[ShapeObject], mentions: tuple[str, ...]) -> int:
        said = tuple(sorted(tuple(getattr(o, a) for a in mentions) for o in objs))
        return keys.setdefault((mentions, said), len(keys))

    # numpy, not torch: a dozen tiny ops on a thread pool that training keeps busy cost ~10 ms each
    text_keys = np.array([key(objs, c.mentions) for objs, c in zip(described, captions, strict=True)])  # (N,)
    out = np.zeros((len(objects), len(captions)), dtype=bool)
    for mentions in {c.mentions for c in captions}:
        image_keys = np.array([key(objs, mentions) for objs in objects])  # (B,) images read as such captions
        said_so = np.array([c.mentions == mentions for c in captions])  # (N,) captions of this kind
        out |= (image_keys[:, None] == text_keys[None, :]) & said_so[None, :]
    return torch.from_numpy(out)


class ShapesBatches(StepCounted):
    """What the three sources share: which images each step takes, the cache, text encoding."""

    rows_per_image = 1

    def __init__(self, data: Shapes, tokenizer: Tokenizer, *, batch_size: int, seed: int,
                 n_images: int | None = None, wrap: tuple[str, str] | None = ("[CLS]", "[SEP]"),
                 max_len: int | None = None, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1 or batch_size % self.rows_per_image:
            raise DataError(f"batch_size={batch_size} must be a positive multiple of {self.rows_per_image} "
                            "(rows per image)")
        if n_images is not None and n_images < 1:
            raise DataError(f"n_images={n_images} must be a positive count, or None for fresh images every step")
        if not 0 <= rank < world_size:
            raise DataError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.data, self.tokenizer, self.batch_size, self.seed = data, tokenizer, batch_size, seed
        self.n_images, self.wrap, self.max_len, self.rank, self.world_size = n_images, wrap, max_len, rank, world_size
        self.step = 0
        self._pixels: Tensor | None = None  # (n_images, 3, H, W) uint8, filled as images are first drawn
        self._memo: dict[tuple[str, int], object] = {}  # (what, index) -> objects / captions / questions

    def next_batch(self) -> dict[str, Tensor]:
        per_step = self.world_size * self.batch_size // self.rows_per_image  # images in the global batch
        if self.n_images is None:
            index = torch.arange(self.step * per_step, (self.step + 1) * per_step)
        else:
            index = epoch_indices(self.n_images, per_step, self.seed, self.step)
        choice = self.draw(per_step, self.step_generator())
        mine = slice(self.rank * per_step // self.world_size, (self.rank + 1) * per_step // self.world_size)
        self.step += 1
        return self.make(index[mine].tolist(), choice[mine])

    def fixed_batches(self, n: int, batch_size: int | None = None) -> list[dict[str, Tensor]]:
        """Images 0..n-1 of the split in order, in batches of `batch_size` rows (the source's by default;
        the last may be smaller); the random choices (which caption, question) come from a fixed seed, so
        every evaluation and every run sees the same batches. Not sharded by rank. Evaluate on a source
        over another split ("test", "heldout"): images 0..n-1 of a training source are training images."""
        batch_size = batch_size or self.batch_size
        if n < 1 or batch_size % self.rows_per_image:
            raise DataError(f"fixed_batches needs n >= 1 (got {n}) and batch_size a multiple of {self.rows_per_image}")
        choice = self.draw(n, torch.Generator().manual_seed(step_seed(self.seed, EVAL_STREAM)))
        per = batch_size // self.rows_per_image
        return [self.make(list(range(s, min(n, s + per))), choice[s : s + per]) for s in range(0, n, per)]

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        """Random choices for n images (which caption, question...), drawn for the global batch."""
        raise NotImplementedError

    def make(self, index: list[int], choice: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def _cached(self, what: str, i: int, build):
        """build(), kept for image i of a fixed set (fresh images, or those past the set, are not kept)."""
        if self.n_images is None or i >= self.n_images:
            return build()
        key = (what, i)
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def images(self, index: list[int]) -> tuple[Tensor, list[tuple[ShapeObject, ...]]]:
        """Normalised pixels (B, 3, H, W) of images `index` and their objects."""
        if self.n_images is None or max(index) >= self.n_images:  # fresh images (or fixed_batches past the set)
            r = self.data.render(index)
            return self.data.normalize(r.images), [objs for objs, _ in r.scenes]
        if self._pixels is None:
            size = self.data.config.image_size
            self._pixels = torch.zeros(self.n_images, 3, size, size, dtype=torch.uint8)
        todo = sorted({i for i in index if ("objects", i) not in self._memo})
        if todo:
            r = self.data.render(todo)
            self._pixels[todo] = r.images
            self._memo.update({("objects", i): objs for i, (objs, _) in zip(todo, r.scenes, strict=True)})
        return self.data.normalize(self._pixels[index]), [self._memo[("objects", i)] for i in index]

    def captions(self, i: int, objects: Sequence[ShapeObject]) -> list[Caption]:
        return self._cached("captions", i, lambda: self.data.captions(i, objects))

    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        return encode_texts(self.tokenizer, texts, self.wrap, self.max_len)


class CaptionBatches(ShapesBatches):
    """Image-caption pairs for contrastive training (CLIP). `captions_per_image` k > 1 puts each image
    in k consecutive rows with k different captions; `caption="canonical"` always takes the first.
    `hard_negatives` (attributes, e.g. ["shape"]) adds each row's caption with one of those attributes
    changed, as extra texts that are false of their own image (NegCLIP)."""

    def __init__(self, data: Shapes, tokenizer: Tokenizer, *, captions_per_image: int = 1,
                 caption: str = "random", hard_negatives: Sequence[str] = (), **kwargs) -> None:
        if caption not in ("random", "canonical"):
            raise DataError(f"caption={caption!r} is not allowed; expected 'random' or 'canonical'")
        if not 1 <= captions_per_image <= data.config.n_captions or (caption == "canonical" and captions_per_image > 1):
            raise DataError(f"captions_per_image={captions_per_image} must lie in [1, n_captions="
                            f"{data.config.n_captions}] (1 with caption='canonical')")
        unknown = [a for a in hard_negatives if a not in ATTRIBUTES]
        if unknown:
            raise DataError(f"hard_negatives={list(hard_negatives)}: {unknown} are not attributes {ATTRIBUTES}")
        self.rows_per_image, self.caption, self.hard_negatives = captions_per_image, caption, tuple(hard_negatives)
        super().__init__(data, tokenizer, **kwargs)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        if self.caption == "canonical":
            return torch.zeros(n, 1, dtype=torch.long)
        scores = torch.rand(n, self.data.config.n_captions, generator=generator)
        return scores.argsort(1)[:, : self.rows_per_image]  # (n, k) distinct captions per image

    def make(self, index: list[int], choice: Tensor) -> dict[str, Tensor]:
        k = self.rows_per_image
        pixels, scenes = self.images([i for i in index for _ in range(k)])  # each image in k rows
        rows = [(i, objs, c, self.captions(i, objs)[c])
                for i, objs, cs in zip(index, scenes[::k], choice.tolist(), strict=True) for c in cs]
        texts = [caption.text for *_, caption in rows]
        if self.hard_negatives:
            negatives = [self.negative(i, objs, c) for i, objs, c, _ in rows]
            texts += [n.text for n in negatives]
        ids, mask = self.encode(texts)  # one T for captions and negatives
        b, objects, captions = len(rows), [objs for _, objs, _, _ in rows], [caption for *_, caption in rows]
        batch = {
            "pixel_values": pixels, "input_ids": ids[:b], "attention_mask": mask[:b],  # (B, 3, H, W), (B, T)
            "image_ids": torch.tensor([i for i, *_ in rows]),
            "group_ids": torch.tensor([attribute_set_id(objs) for objs in objects]),
            "caption_ids": choice.reshape(-1),
            "matches": caption_matches(objects, captions),
        }
        if self.hard_negatives:
            changed = [altered(objs, n) for (_, objs, _, _), n in zip(rows, negatives, strict=True)]
            batch |= {"negative_input_ids": ids[b:], "negative_attention_mask": mask[b:],
                      "negative_matches": caption_matches(objects, captions, described=changed)}
        return batch

    def negative(self, i: int, objects: Sequence[ShapeObject], c: int) -> HardNegative:
        key = "negatives_" + "_".join(self.hard_negatives)
        return self._cached(key, i, lambda: self.data.negatives(i, objects, self.captions(i, objects),
                                                                self.hard_negatives))[c]


def altered(objects: Sequence[ShapeObject], negative: HardNegative) -> list[ShapeObject]:
    """The objects a hard negative describes: the image's, with the one attribute it changed."""
    out = list(objects)
    out[negative.object] = dataclasses.replace(out[negative.object], **{negative.attribute: negative.new})
    return out


class QuestionBatches(ShapesBatches):
    """Image-question-answer triples (VQA), one question per image, of a type drawn uniformly from
    `question_types` (all of QUESTION_TYPES by default)."""

    def __init__(self, data: Shapes, tokenizer: Tokenizer, *, question_types: Sequence[str] = QUESTION_TYPES,
                 **kwargs) -> None:
        unknown = [t for t in question_types if t not in QUESTION_TYPES]
        if unknown or not question_types:
            raise DataError(f"question_types={list(question_types)} must be a non-empty list from {QUESTION_TYPES}")
        self.types = [QUESTION_TYPES.index(t) for t in question_types]
        super().__init__(data, tokenizer, **kwargs)

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.tensor(self.types)[torch.randint(len(self.types), (n,), generator=generator)]

    def make(self, index: list[int], choice: Tensor) -> dict[str, Tensor]:
        pixels, scenes = self.images(index)
        asked = [self._cached("questions", i, lambda i=i, o=objs: self.data.questions(i, o))[t]
                 for i, objs, t in zip(index, scenes, choice.tolist(), strict=True)]
        ids, mask = self.encode([q.text for q in asked])
        return {"pixel_values": pixels, "input_ids": ids, "attention_mask": mask,
                "answers": torch.tensor([ANSWERS.index(q.answer) for q in asked]),
                "question_types": choice.clone(), "image_ids": torch.tensor(index)}


class MatchingBatches(ShapesBatches):
    """Images with a true caption and its one-attribute hard negative (image-text matching)."""

    def draw(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randint(self.data.config.n_captions, (n,), generator=generator)

    def make(self, index: list[int], choice: Tensor) -> dict[str, Tensor]:
        pixels, scenes = self.images(index)
        pairs = []
        for i, objs, c in zip(index, scenes, choice.tolist(), strict=True):
            captions = self.captions(i, objs)
            negatives = self._cached("negatives", i, lambda i=i, o=objs, cs=captions: self.data.negatives(i, o, cs))
            pairs.append((captions[c], negatives[c]))
        ids, mask = self.encode([c.text for c, _ in pairs] + [n.text for _, n in pairs])  # one T for both
        b = len(index)
        return {"pixel_values": pixels, "input_ids": ids[:b], "attention_mask": mask[:b],
                "negative_input_ids": ids[b:], "negative_attention_mask": mask[b:],
                "negative_attributes": torch.tensor([ATTRIBUTES.index(n.attribute) for _, n in pairs]),
                "image_ids": torch.tensor(index),
                "group_ids": torch.tensor([attribute_set_id(objs) for objs in scenes]), "caption_ids": choice.clone()}
