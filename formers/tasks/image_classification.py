"""image_classification: an image encoder with a classifier head (ViT, CNN) on an embedded labelled image set.

The training split loses a seeded `val_fraction` to validation (the Trainer's val/loss and val/accuracy,
and `formers eval`); the test split is touched only by the report, which prints test accuracy, accuracy
per class and the pair of classes the model confuses most. The model's n_classes and n_channels come
from the data; a ViT's image_size and patch_size come from the recipe.

The task reads no text: the recipe's tokenizer and data sections do not apply.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from formers.config import Config, check
from formers.data.images import IMAGE_DATASETS, Augment, ImageBatches, ImageSet, eval_image_batches, load_image_dataset
from formers.errors import ConfigError
from formers.objectives import ImageClassification
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task
from formers.training import distributed

SPLIT_SEED = 0  # the validation images are the same whatever the training seed, so runs compare


@dataclasses.dataclass(kw_only=True)
class ImageClassificationConfig(Config):
    dataset: str = "fashion_mnist"  # an entry of formers.data.images.IMAGE_DATASETS
    val_fraction: float = 0.1  # of the training split, held out for validation (test stays for the report)
    pad: int = 0  # augmentation: random translation by up to `pad` pixels (zero-pad, crop back)
    flip: bool = False  # augmentation: left-right mirror with probability 1/2 (clothing yes, digits no)
    label_smoothing: float = 0.0  # Szegedy et al. 2016

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.dataset in IMAGE_DATASETS, "ImageClassificationConfig.dataset", self.dataset,
              f"one of {sorted(IMAGE_DATASETS)}")
        check(0.0 < self.val_fraction < 1.0, "ImageClassificationConfig.val_fraction", self.val_fraction,
              "a value in (0, 1)")
        check(self.pad >= 0, "ImageClassificationConfig.pad", self.pad, "an int >= 0")
        check(0.0 <= self.label_smoothing < 1.0, "ImageClassificationConfig.label_smoothing", self.label_smoothing,
              "a value in [0, 1)")


def train_val_split(recipe: Recipe) -> tuple[ImageSet, ImageSet]:
    """The training split, less a seeded validation subset."""
    data = load_image_dataset(recipe.objective.dataset, "train")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = round(len(data) * recipe.objective.val_fraction)
    return data.subset(order[n_val:]), data.subset(order[:n_val])


def make_objective(recipe: Recipe) -> ImageClassification:
    return ImageClassification(recipe.objective.label_smoothing)


def build(recipe: Recipe) -> Run:
    train, val = train_val_split(recipe)
    torch.manual_seed(recipe.trainer.seed)
    try:
        config = recipe.model.replace(n_classes=len(train.classes), n_channels=train.n_channels)
    except TypeError:  # a text model's config has neither field
        raise ConfigError(f"model.family={recipe.model.family!r} is not an image encoder; image_classification "
                          "trains one with n_classes and n_channels (family vit or cnn)") from None
    model = build_model(config)
    cfg, t = recipe.objective, recipe.trainer
    augment = Augment(pad=cfg.pad, flip=cfg.flip) if cfg.pad or cfg.flip else None
    return Run(
        model=model, objective=make_objective(recipe),
        # under torchrun each rank keeps its slice of every global batch (batch_size is per rank)
        train_source=ImageBatches(train, batch_size=t.batch_size, seed=t.seed, augment=augment,
                                  rank=distributed.rank(), world_size=distributed.world_size()),
        val_batches=eval_image_batches(val, batch_size=t.batch_size, max_batches=t.eval_batches),
    )


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    """The validation images (the checkpoint carries no tokenizer: images need none)."""
    _, val = train_val_split(recipe)
    return eval_image_batches(val, batch_size=recipe.trainer.batch_size, max_batches=recipe.trainer.eval_batches)


@torch.no_grad()
def predict(model: nn.Module, data: ImageSet, batch_size: int = 500) -> torch.Tensor:
    """The predicted class of every image, (N,), in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(batch["pixel_values"].to(device)).logits.argmax(-1).cpu()
           for batch in eval_image_batches(data, batch_size=batch_size)]
    model.train(was_training)
    return torch.cat(out)


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(C, C) counts: row = true class, column = predicted class."""
    return torch.bincount(labels * n_classes + predicted, minlength=n_classes**2).reshape(n_classes, n_classes)


def most_confused_pair(confusion: torch.Tensor) -> tuple[int, int]:
    """The two classes most often taken for each other, counting both directions."""
    mutual = (confusion + confusion.T).triu(diagonal=1)  # (C, C), each unordered pair once
    flat = int(mutual.argmax())
    return flat // len(confusion), flat % len(confusion)


def report(recipe: Recipe, run: Run) -> str:
    """Test accuracy, accuracy per class, and the most confused pair, on the untouched test split."""
    test = load_image_dataset(recipe.objective.dataset, "test")
    predicted = predict(run.model, test)
    confusion = confusion_matrix(test.labels, predicted, len(test.classes))
    correct = confusion.diagonal()
    per_class = correct / confusion.sum(1).clamp(min=1)
    a, b = most_confused_pair(confusion)
    names = test.classes
    lines = [
        f"test/accuracy: {correct.sum().item() / len(test):.4f} on {len(test):,} {recipe.objective.dataset} test "
        f"images (chance {1 / len(names):.2f})",
        "per class: " + ", ".join(f"{n} {acc:.2f}" for n, acc in zip(names, per_class.tolist(), strict=True)),
        f"most confused pair: {names[a]} <-> {names[b]}: {int(confusion[a, b] + confusion[b, a])} test images "
        f"({names[a]} taken for {names[b]} {int(confusion[a, b])}, {names[b]} for {names[a]} {int(confusion[b, a])})",
    ]
    return "\n".join(lines)


IMAGE_CLASSIFICATION = Task(
    objective_config=ImageClassificationConfig, make_objective=make_objective, build=build, report=report,
    eval_data=eval_data)
