"""A VQA-CP-style biased training set over the library's Shapes questions, and the two remedies the
modality_dominance study compares (both study-local: they wrap the library's VQA loss and model, see below).

Agrawal et al. 2018 (VQA-CP) re-split VQA so that, per question type, the answer distribution of training
differs from that of test: a model that learned "what colour ... -> red" from the question alone fails at
test. Here the rows come from formers' QuestionBatches, a colour and a shape question about every image, and
`select_rows` keeps every image whose colour answer is the DOMINANT one (a red object) and just enough others
that red makes up `share` of the colour answers. Asking both questions about each image matters: with one
question per image, the biased images would tell which question is asked (a red object: a colour question),
and the image alone would carry the shortcut. `PriorShifted` serves a row selection as a resumable batch source.

Why the remedies live here and not in formers: both are training-time choices of this experiment, not
capabilities of a model. Blanking the question is a transform of the batch (like the masking objectives
do), so it wraps the objective; the image-only head reads the image tower's pooled vector through a
forward hook, so any fusion model with a tower works unchanged, and the head is dropped after training.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from formers.data.batches import StepCounted
from formers.data.images import epoch_indices
from formers.data.shapes_batches import QuestionBatches
from formers.data.shapes_text import ANSWERS, QUESTION_TYPES
from formers.objectives.causal_lm import token_cross_entropy
from formers.tasks.shapes_tasks import shapes_split, task_tokenizer
from formers.tasks.vqa import VQAConfig

QUESTIONS = ("colour", "shape")  # one object per image: the answer is in the image, the type in the question
DOMINANT = {"colour": "red"}  # the answer the biased training set favours; shape questions keep no prior
SHARE = 0.85  # of the colour questions (each colour's natural share is 1/8)
DATA = VQAConfig(shapes={"image_size": 24, "max_objects": 1})


def question_rows(split: str, n_images: int) -> dict[str, Tensor]:
    """Both a colour and a shape question about each of images 0..n-1 of a split: 2n rows (the colour
    questions, then the shape ones), so an image alone never says which question is asked."""
    def ask(kind: str) -> dict[str, Tensor]:
        source = QuestionBatches(shapes_split(DATA, split), task_tokenizer(), batch_size=n_images, seed=0,
                                 question_types=[kind])
        return source.fixed_batches(n_images)[0]

    parts = [ask(kind) for kind in QUESTIONS]
    width = max(p["input_ids"].shape[1] for p in parts)
    pad = lambda x: nn.functional.pad(x, (0, width - x.shape[1]))  # noqa: E731  (pad id 0, masked out)
    for p in parts:
        p["input_ids"], p["attention_mask"] = pad(p["input_ids"]), pad(p["attention_mask"])
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def prior_answer(question_types: Tensor) -> Tensor:
    """(N,) the dominant answer of each row's question type; -1 for a type without one."""
    table = torch.full((len(QUESTION_TYPES),), -1, dtype=torch.long)
    for kind, answer in DOMINANT.items():
        table[QUESTION_TYPES.index(kind)] = ANSWERS.index(answer)
    return table[question_types]


def agrees_with_prior(rows: dict[str, Tensor]) -> Tensor:
    """(N,) bool: the row's answer is its type's dominant one (what answering from the question gets right)."""
    return rows["answers"] == prior_answer(rows["question_types"])


def has_prior(rows: dict[str, Tensor]) -> Tensor:
    """(N,) bool: the row's question type has a dominant answer in the biased set."""
    return prior_answer(rows["question_types"]) >= 0


def select_rows(rows: dict[str, Tensor], share: float | None, *, seed: int, n_images: int | None = None) -> Tensor:
    """Indices of the rows (both questions) of selected images. share=None: `n_images` images drawn without
    bias. Otherwise every image whose prior-type question agrees with the prior (a red object) plus
    round(n * (1 - share) / share) others drawn at random, so the prior holds for `share` of those questions."""
    g = torch.Generator().manual_seed(seed)
    images = rows["image_ids"].unique()
    if share is None:
        chosen = images[torch.randperm(len(images), generator=g)[:n_images]]
    else:
        favoured = rows["image_ids"][agrees_with_prior(rows)].unique()
        others = images[~torch.isin(images, favoured)]
        n_others = round(len(favoured) * (1 - share) / share)
        chosen = torch.cat([favoured, others[torch.randperm(len(others), generator=g)[:n_others]]])
    return torch.isin(rows["image_ids"], chosen).nonzero()[:, 0]


class PriorShifted(StepCounted):
    """Batches of the selected rows, each epoch in a seeded order: the batch at step n is a pure function of
    (rows, index, seed, n), so the Trainer resumes it from the step counter alone."""

    def __init__(self, rows: dict[str, Tensor], index: Tensor, *, batch_size: int, seed: int) -> None:
        self.rows, self.index, self.batch_size, self.seed, self.step = rows, index, batch_size, seed, 0

    def next_batch(self) -> dict[str, Tensor]:
        picks = self.index[epoch_indices(len(self.index), self.batch_size, self.seed, self.step)]
        self.step += 1
        return {k: v[picks] for k, v in self.rows.items()}


def blank_questions(batch: dict[str, Any], which: Tensor) -> dict[str, Any]:
    """The batch with the questions of rows `which` (B,) bool replaced by the empty question "[CLS] [SEP]"."""
    tokenizer = task_tokenizer()
    ids, mask = batch["input_ids"].clone(), batch["attention_mask"].clone()  # (B, T)
    ids[which] = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    ids[which, 0], ids[which, 1] = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    mask[which] = 0
    mask[which, :2] = 1
    return {**batch, "input_ids": ids, "attention_mask": mask}


class QuestionDropout:
    """Modality dropout of the question (Neverova et al. 2015's ModDrop, on the modality that dominates): each
    row's question is blanked with probability p before the wrapped objective sees the batch."""

    def __init__(self, objective, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p={p} must lie in [0, 1)")
        self.objective, self.p = objective, p

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        which = torch.rand(len(batch["answers"])) < self.p  # (B,) the global RNG, seeded by the study
        return self.objective(model, blank_questions(batch, which))


def image_tower(model: nn.Module) -> nn.Module:
    """The image tower of a late-fusion model or of a classifier over a VisualBERT trunk."""
    if hasattr(model, "features"):
        return model.features.image_tower
    return model.trunk.visual_tokens.tower


class WithImageHead(nn.Module):
    """A fusion model plus a linear answer head on its image tower's pooled vector ([CLS]), read through a
    forward hook during the fused pass (no second pass through the tower). `forward` is the fusion model's."""

    def __init__(self, fusion: nn.Module, n_answers: int) -> None:
        super().__init__()
        self.fusion = fusion
        tower = image_tower(fusion)
        self.head = nn.Linear(tower.config.d_model, n_answers)
        self.pooled: Tensor | None = None
        tower.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.pooled = output.pooled  # (B, D_image)

    @property
    def config(self):
        """The fusion model's: what the Trainer's checkpoint records (the head is scaffolding of this run)."""
        return self.fusion.config

    def forward(self, *args, **kwargs):
        return self.fusion(*args, **kwargs)


class ImageHeadLoss:
    """The wrapped objective's loss plus `weight` x the image-only head's cross-entropy on the same answers:
    a unimodal auxiliary loss (Wang et al. 2020 weigh such heads by their overfitting; here one fixed weight)."""

    def __init__(self, objective, weight: float) -> None:
        self.objective, self.weight = objective, weight

    def __call__(self, model: WithImageHead, batch: dict) -> dict:
        out = self.objective(model, batch)  # runs the tower, so model.pooled holds this batch's vectors
        image = token_cross_entropy(model.head(model.pooled), batch["answers"])
        return {**out, "loss": out["loss"] + self.weight * image["loss"], "image_only_accuracy": image["accuracy"]}
