"""vqa: answer questions about Shapes images (colour, shape, size, count, position, yes/no).

The model is any fusion classifier reading (input_ids, attention_mask, pixel_values): a task head over a
fusion trunk (`family: sequence_classifier` with a visualbert or coattention trunk) or the late-fusion
baseline (`family: late_fusion`). Validation runs on held-out colour-shape combinations; the report gives
accuracy by question type on the test and held-out splits, beside the answer prior (the most frequent
training answer of each question type), which is what a model that ignores the image can reach.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import torch

from formers.config import check
from formers.data.shapes_batches import QuestionBatches
from formers.data.shapes_text import ANSWERS, QUESTION_TYPES
from formers.errors import ConfigError
from formers.io import load
from formers.objectives.vqa import VQALoss, predict_answers
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task
from formers.tasks.shapes_tasks import EVAL_SPLITS, ShapesTaskConfig, fit_model, shapes_split, task_tokenizer


@dataclasses.dataclass(kw_only=True)
class VQAConfig(ShapesTaskConfig):
    label_smoothing: float = 0.0
    prior_images: int = 2048  # training images whose answers make the answer-prior baseline
    # a checkpoint (run folder or step folder) whose trunk initialises the classifier's: a vlp model's
    # VisualBERT (pretraining, then fine-tuning), a bare trunk of the same config, or a CLIP (late_fusion
    # with `clip:`)
    pretrained: str | None = None
    # the question types trained and measured (a subset: e.g. the types a short run can learn)
    question_types: list[str] = dataclasses.field(default_factory=lambda: list(QUESTION_TYPES))

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "VQAConfig.label_smoothing", self.label_smoothing, "a value in [0, 1)")
        types = self.question_types
        check(bool(types) and set(types) <= set(QUESTION_TYPES) and len(set(types)) == len(types),
              "VQAConfig.question_types", types, f"a non-empty list of distinct types from {QUESTION_TYPES}")


def _questions(recipe: Recipe, split: str, tokenizer, n_images: int | None = None) -> QuestionBatches:
    return QuestionBatches(shapes_split(recipe.objective, split), tokenizer, batch_size=recipe.trainer.batch_size,
                           seed=recipe.trainer.seed, n_images=n_images, question_types=recipe.objective.question_types)


def split_batches(recipe: Recipe, split: str, tokenizer=None) -> list[dict]:
    tokenizer = tokenizer or task_tokenizer()
    return _questions(recipe, split, tokenizer).fixed_batches(recipe.objective.eval_images)


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    """Validation: the held-out combinations (what the recipes' expectations are about)."""
    return split_batches(recipe, "heldout", tokenizer)


def make_objective(recipe: Recipe) -> VQALoss:
    return VQALoss(recipe.objective.label_smoothing)


def build(recipe: Recipe) -> Run:
    tokenizer = task_tokenizer()
    torch.manual_seed(recipe.trainer.seed)
    model = build_model(fit_model(recipe.model, tokenizer.vocab_size, len(ANSWERS)))
    if recipe.objective.pretrained is not None:
        load_pretrained_trunk(model, recipe.objective.pretrained)
    source = _questions(recipe, "train", tokenizer, recipe.objective.n_train_images)
    return Run(model=model, objective=make_objective(recipe), train_source=source,
               val_batches=eval_data(recipe, tokenizer), tokenizer=tokenizer)


def load_pretrained_trunk(model, path: str) -> None:
    """Copy a checkpoint's trunk (a vlp model's `.trunk`, or the model itself: a CLIP for late fusion on CLIP
    features) into the model's trunk; the configs must agree (a mismatch is refused, naming the fields)."""
    source = load(path)
    trunk = getattr(source, "trunk", source)
    target = model.features.clip if hasattr(model, "features") and hasattr(model.features, "clip") else model.trunk
    if trunk.config != target.config:
        theirs, ours = trunk.config.to_dict(), target.config.to_dict()
        differ = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(theirs) | set(ours))
                  if theirs.get(k) != ours.get(k)}
        raise ConfigError(f"objective.pretrained={path!r} holds a {trunk.config.family} trunk whose config differs "
                          f"from model.trunk in (pretrained, recipe) = {differ}; use the pretraining recipe's "
                          "trunk settings")
    target.load_state_dict(trunk.state_dict())


def accuracy_by_type(predicted: torch.Tensor, answers: torch.Tensor, kinds: torch.Tensor) -> dict[str, float]:
    """{"all": ..., question type: accuracy} over the types present."""
    hits = (predicted == answers).float()
    out = {"all": float(hits.mean())}
    for i, name in enumerate(QUESTION_TYPES):
        chosen = kinds == i
        if chosen.any():
            out[name] = float(hits[chosen].mean())
    return out


def answer_prior(recipe: Recipe, tokenizer) -> dict[int, int]:
    """Question type -> its most frequent answer in `prior_images` training images."""
    batches = _questions(recipe, "train", tokenizer).fixed_batches(recipe.objective.prior_images)
    counts: dict[int, Counter] = {i: Counter() for i in range(len(QUESTION_TYPES))}
    for b in batches:
        for kind, answer in zip(b["question_types"].tolist(), b["answers"].tolist(), strict=True):
            counts[kind][answer] += 1
    return {k: c.most_common(1)[0][0] for k, c in counts.items() if c}


def evaluate_splits(recipe: Recipe, run: Run) -> dict[str, dict[str, float]]:
    """split -> accuracy by question type, for the model and for the answer prior."""
    prior = answer_prior(recipe, run.tokenizer)
    out = {}
    for split in EVAL_SPLITS:
        predicted, answers, kinds = predict_answers(run.model, split_batches(recipe, split, run.tokenizer))
        guess = torch.tensor([prior.get(k, 0) for k in kinds.tolist()])
        out[split] = accuracy_by_type(predicted, answers, kinds)
        out[f"{split} prior"] = accuracy_by_type(guess, answers, kinds)
    return out


def report(recipe: Recipe, run: Run) -> str:
    results = evaluate_splits(recipe, run)
    names = ["all", *recipe.objective.question_types]
    lines = [f"VQA accuracy by question type ({recipe.objective.eval_images} images per split; "
             "prior = the most frequent training answer of the type)",
             f"{'':14s}" + "".join(f"{n:>10s}" for n in names)]
    for split, acc in results.items():
        lines.append(f"{split:14s}" + "".join(f"{acc.get(n, float('nan')):10.3f}" for n in names))
    return "\n".join(lines)


VQA = Task(objective_config=VQAConfig, make_objective=make_objective, build=build, report=report,
                          eval_data=eval_data)
