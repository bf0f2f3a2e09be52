"""The image tokenizer and text-to-image recipes end to end through `formers train / eval / generate`, tiny."""

import json
from pathlib import Path

import pytest

from formers.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--trainer.progress=false", "--trainer.tensorboard=false", "--trainer.eval_every=0",
         "--trainer.eval_batches=2", "--trainer.batch_size=16", "--trainer.schedule.warmup_steps=2"]
SHAPES = '{"image_size": 24, "max_objects": 1, "n_captions": 2}'
VQ = [*QUICK, "--model.hidden=16", "--model.n_res_blocks=1", "--model.quantizer.codebook_size=16",
      "--model.quantizer.code_dim=8", f"--objective.shapes={SHAPES}", "--objective.n_train=64",
      "--objective.n_test=32", "--trainer.max_steps=12"]


@pytest.fixture(scope="module")
def tokenizer_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq")
    assert main(["train", str(ROOT / "recipes/vqvae-shapes.yaml"), "--out", str(out), *VQ]) == 0
    return out


def test_image_tokenizer_trains_and_measures_the_test_set(tokenizer_run, capsys):
    assert main(["eval", str(tokenizer_run)]) == 0
    printed = capsys.readouterr().out
    for key in ("val/l2", "test/psnr", "test/ssim", "test/code_usage", "test/baseline_psnr"):
        assert key in printed
    usage = float(next(line for line in printed.splitlines() if line.startswith("test/code_usage")).split()[-1])
    assert 0 < usage <= 1


def test_text_to_image_trains_and_generate_writes_images(tokenizer_run, tmp_path):
    out = tmp_path / "dalle"
    args = [*QUICK, "--model.d_model=32", "--model.n_heads=2", "--model.n_layers=1", f"--objective.shapes={SHAPES}",
            f"--objective.image_tokenizer={tokenizer_run}", "--objective.judge=null", "--objective.n_train=48",
            "--objective.n_val=16", "--trainer.max_steps=6"]
    assert main(["train", str(ROOT / "recipes/dalle-shapes.yaml"), "--out", str(out), *args]) == 0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val/image_loss" in r for r in history)
    png = tmp_path / "grid.png"
    assert main(["generate", str(out), "--prompt", "a red circle | a large blue square at the top",
                 "--images", str(png), "--n_samples", "3"]) == 0
    assert png.stat().st_size > 1000
