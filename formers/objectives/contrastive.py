"""Symmetric InfoNCE between images and texts (CLIP, Radford et al. 2021), with in-batch false negatives.

A batch holds B image-text pairs; text j was written for image j. The model scores every image
against every text, `logits_per_image` (B, B) = scale * cos(image_i, text_j), and each image must
pick its own text among the batch's B texts, and each text its own image (van den Oord et al. 2018,
InfoNCE; CLIP's pseudo-code, figure 3):

    loss = (CE(logits_per_image, arange(B)) + CE(logits_per_text, arange(B))) / 2

**False negatives.** Two rows of one batch may be equally right for each other: two captions of the
same image, or two images with the same attributes described by the same words. Plain InfoNCE
pushes them apart as negatives, teaching the model to separate what it cannot and should not. Pairs
that share an id in any of the batch's `match_keys` (`image_ids`, `group_ids`) are *matches*, and so
is every (image i, text j) a batch's own `matches` (B, B) marks (Shapes: caption j is true of image
i, which can hold one way only: "a red circle" is true of an image with a red circle and more).
A match other than the row's own pair is removed from that row's softmax denominator ("false
negative elimination", Huynh et al. 2022, "Boosting Contrastive Self-Supervised Learning with False
Negative Cancellation"):

    loss_i = -s_ii + log( exp(s_ii) + sum of exp(s_ij) over the j that do not match i )

We mask rather than treat matches as extra positives (SupCon's multi-positive targets, Khosla et al.
2020; "false negative attraction" in Huynh et al.) because masking (a) equals CLIP's loss exactly
when no ids are shared, and is 0 at perfect separation, (b) never asks the model to score two
different captions of an image equally (multi-positive targets do: their optimum puts equal
probability on every positive, so a more specific caption is pulled down to a vaguer one's score),
and (c) keeps one target per row, so accuracy and retrieval read the same way as in CLIP.

**Hard negatives.** A batch may add N texts that belong to no image (`negative_input_ids`: a caption
with one attribute changed, false of its image). They join the image->text softmax as extra columns,
so each image must rank its caption above the near-miss (NegCLIP, Yuksekgonul et al. 2023, "When and
why vision-language models behave like bags-of-words"); the text->image direction has no image for
them and leaves them out. A negative that is nonetheless true of some image (`negative_matches`) is
masked out of that image's row like any false negative. Where captions of different images rarely
share their colour and position, in-batch negatives never ask for the shape; shape-changed
negatives do.

Accuracy counts a row as right when its highest-scoring column is any match (an identical caption
is as right as the paired one).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from formers.config import Config
from formers.errors import DataError

# batch keys marking interchangeable pairs: (B,) ids (equal ids match) or a (B, B) bool matrix [image i, text j]
MATCH_KEYS = ("image_ids", "group_ids", "matches")


def matches_from_ids(*ids: torch.Tensor | None) -> torch.Tensor | None:
    """(B,) id vectors or (B, B) bool matrices -> (B, B) bool, True where rows i and j share an id in any of
    the vectors or a matrix marks (i, j); None if none is given."""
    out = None
    for row in ids:
        if row is None:
            continue
        same = row.bool() if row.dim() == 2 else row[:, None] == row[None, :]  # (B, B)
        out = same if out is None else out | same
    return out


def info_nce(logits_per_image: torch.Tensor, matches: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE over (B, B + N) logits whose first B columns hold the pairs on their diagonal and
    whose N further columns are texts that are negatives only; `matches` (B, B + N) bool masks false
    negatives (off-diagonal matches) out of the denominators. Returns loss and the image->text (over all
    B + N texts) and text->image accuracies. The softmax runs in fp32 whatever the logits' dtype."""
    if logits_per_image.dim() != 2 or logits_per_image.shape[1] < logits_per_image.shape[0]:
        raise DataError(f"contrastive logits must be (B, B + N): one text per image, then N >= 0 negative "
                        f"texts; got {tuple(logits_per_image.shape)}")
    b, n_texts = logits_per_image.shape
    logits = logits_per_image.float()
    eye = torch.eye(b, n_texts, dtype=torch.bool, device=logits.device)
    if matches is None:
        matches = eye
    elif matches.shape != (b, n_texts):
        raise DataError(f"matches of shape {tuple(matches.shape)} do not fit logits {(b, n_texts)}; pass "
                        "(B, B + N) bool")
    false_negatives = matches & ~eye  # (B, B + N)
    masked = logits.masked_fill(false_negatives, float("-inf"))  # the diagonal stays: every row keeps a target
    targets = torch.arange(b, device=logits.device)
    loss = (F.cross_entropy(masked, targets) + F.cross_entropy(masked[:, :b].T, targets)) / 2
    with torch.no_grad():
        image_to_text = matches.gather(1, logits.argmax(1, keepdim=True)).float().mean()
        text_to_image = matches[:, :b].T.gather(1, logits[:, :b].T.argmax(1, keepdim=True)).float().mean()
    return {"loss": loss, "i2t_accuracy": image_to_text, "t2i_accuracy": text_to_image}


@dataclasses.dataclass(kw_only=True)
class ContrastiveConfig(Config):
    # batch keys of ids that mark interchangeable pairs; [] = plain CLIP (every other row is a negative)
    match_keys: list[str] = dataclasses.field(default_factory=lambda: list(MATCH_KEYS))


class Contrastive:
    """objective(model, batch) for dual encoders: batch {pixel_values, input_ids, attention_mask,
    [image_ids], [group_ids]} -> loss, i2t/t2i accuracy and the model's current logit scale."""

    def __init__(self, config: ContrastiveConfig | None = None) -> None:
        self.match_keys = tuple((config or ContrastiveConfig()).match_keys)

    def __call__(self, model: nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = batch["input_ids"], batch.get("attention_mask")
        negatives = batch.get("negative_input_ids")
        if negatives is not None:  # one text forward for captions and negatives, which share T
            input_ids = torch.cat([input_ids, negatives])
            attention_mask = None if attention_mask is None else torch.cat([attention_mask,
                                                                            batch["negative_attention_mask"]])
        out = model(pixel_values=batch["pixel_values"], input_ids=input_ids, attention_mask=attention_mask)
        matches = matches_from_ids(*(batch.get(k) for k in self.match_keys))
        if negatives is not None:
            b = batch["pixel_values"].shape[0]
            own = torch.eye(b, dtype=torch.bool, device=input_ids.device) if matches is None else matches
            fooled = batch.get("negative_matches")  # (B, N): negative j is true of image i
            if fooled is None:
                fooled = torch.zeros(b, negatives.shape[0], dtype=torch.bool)
            matches = torch.cat([own, fooled.to(own.device)], dim=1)
        metrics = info_nce(out.logits_per_image, matches)
        metrics["logit_scale"] = out.logit_scale.detach()
        return metrics
