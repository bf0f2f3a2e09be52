"""image_classification: the shipped recipes train at reduced size on Digits (8x8, bundled with scikit-learn)
through the command line, beat chance by far, and `formers eval` reads back the same validation accuracy."""

import json
import re
from pathlib import Path

import pytest
import torch

from formers.cli import main
from formers.errors import ConfigError
from formers.tasks import load_recipe
from formers.tasks.image_classification import build, confusion_matrix, most_confused_pair

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.progress=false", "--trainer.tensorboard=false", "--trainer.eval_every=0",
         "--trainer.save_every=0"]
DIGITS = ["--objective.dataset=digits", "--objective.flip=false", "--objective.pad=0", "--trainer.batch_size=64",
          "--trainer.eval_batches=3", "--trainer.schedule.warmup_steps=10"]


def train(recipe: str, out: Path, capsys, *overrides: str) -> tuple[str, dict]:
    assert main(["train", str(ROOT / "recipes" / f"{recipe}.yaml"), "--out", str(out), *QUIET, *DIGITS,
                 *overrides]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "train/loss" in r]
    # images have no tokens: their pace is logged in examples per second, not as 0 tokens per second
    assert trained and all(r["train/examples_per_s"] > 0 and "train/tokens_per_s" not in r for r in trained)
    return printed, [r for r in records if "val/accuracy" in r][-1]


@pytest.mark.usefixtures("one_thread")  # tiny models; the bounds were measured on one thread
@pytest.mark.parametrize("recipe, bound, overrides", [
    # measured on one thread: test accuracy 0.97 (CNN, 300 steps) and 0.95 (ViT, 300 steps); chance is 0.10
    ("cnn-fashion-mnist", 0.85, ["--trainer.max_steps=300", "--model.widths=[16, 32]", "--model.depths=[1, 1]",
                                 "--model.groups=4"]),
    # 8x8 digits in 4x4 patches (2x2 patches of 2x2 pixels learn far slower: 0.48 at 300 steps)
    ("vit-fashion-mnist", 0.85, ["--trainer.max_steps=300", "--model.image_size=8", "--model.patch_size=4",
                                 "--model.d_model=64", "--model.n_layers=2", "--model.d_ff=128", "--model.dropout=0.0",
                                 "--trainer.optimizer.lr=3.0e-3", "--objective.label_smoothing=0.0"]),
])
def test_recipes_learn_digits_at_reduced_size(recipe, bound, overrides, tmp_path, capsys):
    printed, last = train(recipe, tmp_path, capsys, *overrides)
    test_accuracy = float(re.search(r"test/accuracy: ([\d.]+) on 359 digits test images", printed).group(1))
    assert last["val/accuracy"] > bound and test_accuracy > bound, printed
    assert re.search(r"most confused pair: \d <-> \d: \d+ test images", printed), printed
    assert main(["eval", str(tmp_path)]) == 0  # `formers eval` rebuilds the same validation images
    evaluated = float(re.search(r"val/accuracy: ([\d.]+)", capsys.readouterr().out).group(1))
    assert abs(evaluated - last["val/accuracy"]) < 1e-4  # printed to 4 decimals


def test_confusion_matrix_and_most_confused_pair():
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    predicted = torch.tensor([0, 2, 1, 1, 2, 1, 1, 2])
    confusion = confusion_matrix(labels, predicted, 3)
    assert confusion.tolist() == [[1, 0, 1], [0, 2, 1], [0, 2, 1]]
    assert most_confused_pair(confusion) == (1, 2)  # 1 -> 2 once, 2 -> 1 twice: 3 in all


def test_text_models_and_bad_fields_are_refused(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "cnn-fashion-mnist.yaml")
    with pytest.raises(ConfigError, match="objective.dataset='mnist' is not allowed; expected one of"):
        load_recipe(ROOT / "recipes" / "cnn-fashion-mnist.yaml", {"objective.dataset": "mnist"})
    bad = tmp_path / "gpt.yaml"
    bad.write_text("task: image_classification\nobjective: {dataset: digits}\nmodel: {family: gpt}\n")
    with pytest.raises(ConfigError, match="model.family='gpt' is not an image encoder"):
        build(load_recipe(bad))
    assert recipe.model.family == "cnn"
