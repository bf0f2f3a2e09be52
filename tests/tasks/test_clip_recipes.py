"""The clip recipes train at reduced size through the command line and learn: the loss falls and
zero-shot accuracy and retrieval beat chance by a margin; `formers eval` measures the same figures."""

import json
import re
from pathlib import Path

import pytest

from formers.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.progress=false", "--trainer.tensorboard=false", "--trainer.eval_every=0",
         "--trainer.save_every=0"]


def train(recipe: str, out: Path, capsys, *overrides: str) -> tuple[str, list[dict]]:
    assert main(["train", str(ROOT / "recipes" / f"{recipe}.yaml"), "--out", str(out), *QUIET, *overrides]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return printed, [r for r in records if "val/loss" in r]


def figure(printed: str, key: str) -> float:
    match = re.search(rf"^{re.escape(key)}: ([\d.]+)$", printed, re.MULTILINE)
    assert match, f"{key} not in:\n{printed}"
    return float(match.group(1))


@pytest.mark.usefixtures("one_thread")  # tiny towers: one thread is faster than two on a busy machine
@pytest.mark.filterwarnings("ignore:.*has no weights for.*:UserWarning")  # MiniLM is a bare BertModel
def test_lit_with_the_locked_minilm_learns_fashion_mnist_zero_shot(tmp_path, capsys):
    printed, evals = train(
        "clip-lit-fashion-mnist", tmp_path, capsys, "--trainer.max_steps=60", "--trainer.batch_size=64",
        "--trainer.eval_batches=4", "--trainer.schedule.warmup_steps=10", "--model.image.widths=[8,16,32]",
        "--objective.labelled.train_limit=4000", "--objective.labelled.test_limit=400",
        "--objective.retrieval_pairs=200",
    )
    assert evals[-1]["val/loss"] < evals[0]["val/loss"] - 1.0, printed  # ~4.1 -> ~2.5 measured
    accuracy, chance = figure(printed, "test/zero_shot_class"), figure(printed, "test/zero_shot_class_chance")
    assert chance < 0.15 and accuracy > chance + 0.3, printed  # 10 classes; ~0.6 measured after 60 steps
    assert figure(printed, "test/t2i/R@1") > figure(printed, "test/t2i/chance_R@1") + 0.3, printed
    assert "zero-shot class:" in printed and "retrieval image->text on 200 held-out pairs" in printed
    assert main(["eval", str(tmp_path)]) == 0
    evaluated = capsys.readouterr().out
    assert figure(evaluated, "test/zero_shot_class") == pytest.approx(accuracy, abs=1e-4)
    assert figure(evaluated, "val/loss") == pytest.approx(evals[-1]["val/loss"], abs=1e-4)


@pytest.mark.usefixtures("one_thread")
def test_clip_on_shapes_learns_colour_zero_shot_on_held_out_pairs(tmp_path, capsys):
    printed, evals = train(
        "clip-shapes", tmp_path, capsys, "--trainer.max_steps=150", "--trainer.batch_size=64",
        "--trainer.eval_batches=2", "--trainer.optimizer.lr=3.0e-3", "--trainer.schedule.warmup_steps=10",
        "--objective.shapes.shapes.image_size=24", "--objective.shapes.probe_images=200",
        "--objective.retrieval_pairs=200",
        "--model.image={family: cnn, n_channels: 3, widths: [8, 16, 32], depths: [1, 1, 1], groups: 4}",
        "--model.text.d_model=32", "--model.text.n_layers=2", "--model.text.d_ff=64", "--model.embed_dim=32",
    )
    assert evals[-1]["val/loss"] < evals[0]["val/loss"] - 0.5, printed
    # colour is what a contrastive model learns first; 8 colours, chance ~0.14 on these 200 images
    colour, chance = figure(printed, "test/zero_shot_colour"), figure(printed, "test/zero_shot_colour_chance")
    assert colour > chance + 0.25, printed
    assert figure(printed, "test/t2i/R@10") > figure(printed, "test/t2i/chance_R@10") + 0.05, printed
    assert "zero-shot shape:" in printed and "retrieval text->image on 200 held-out pairs" in printed
