"""The Shapes vision-language tasks (vqa, vlp / image-text matching, captioning) train through `formers train`
at tiny size, print their reports, check expectations, and `formers eval` rebuilds their validation data."""

import json
import re
from pathlib import Path

import pytest

from formers.cli import main
from formers.errors import ConfigError
from formers.tasks import load_recipe
from formers.tasks.shapes_tasks import fit_model

ROOT = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.progress=false", "--trainer.tensorboard=false", "--trainer.eval_every=0",
         "--trainer.save_every=0", "--trainer.max_steps=3", "--trainer.batch_size=8", "--trainer.eval_batches=1",
         "--objective.eval_images=8"]
VIT = "{family: vit, image_size: 24, patch_size: 8, d_model: 16, n_heads: 2, n_layers: 1}"
TINY_TRUNK = ["--model.trunk.d_model=32", "--model.trunk.n_layers=1", f"--model.trunk.image={VIT}"]


def train(recipe: str, out: Path, capsys, *overrides: str) -> tuple[str, dict]:
    assert main(["train", str(ROOT / "recipes" / f"{recipe}.yaml"), "--out", str(out), *QUIET, *overrides]) == 0
    printed = capsys.readouterr().out
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return printed, [r for r in records if any(k.startswith("val/") for k in r)][-1]


@pytest.mark.parametrize("recipe, extra", [
    ("vqa-visualbert-shapes", TINY_TRUNK),
    # the other two models run the same task code; their own contract is in tests/models/test_fusion_contract.py
    pytest.param("vqa-coattention-shapes", [*TINY_TRUNK, "--model.trunk.n_cross_layers=1"], marks=pytest.mark.slow),
    pytest.param("vqa-late-fusion-shapes",
                 [f"--model.image={VIT}", "--model.text.d_model=32", "--model.text.n_layers=1"],
                 marks=pytest.mark.slow),
])
def test_vqa_reports_accuracy_by_question_type(recipe, extra, tmp_path, capsys):
    printed, last = train(recipe, tmp_path, capsys, "--objective.prior_images=16", *extra)
    assert "val/accuracy" in last and "expect val/accuracy" in printed
    for split in ("test", "test prior", "heldout", "heldout prior"):
        row = re.search(rf"^{split}\s+([\d.]+)((\s+[\d.nan]+){{6}})$", printed, re.M)
        assert row, (split, printed)
    assert main(["eval", str(tmp_path)]) == 0
    evaluated = re.search(r"val/accuracy: ([\d.]+)", capsys.readouterr().out)
    assert abs(float(evaluated.group(1)) - last["val/accuracy"]) < 1e-6


def test_matching_reports_each_negative_kind_and_reranking(tmp_path, capsys):
    printed, last = train("itm-shapes", tmp_path, capsys, *TINY_TRUNK, "--objective.mim_weight=0.5",
                          "--objective.mlm_weight=0.5")
    for kind in ("positive", "mined_text", "mined_image", "hard_text", "easy_text"):
        assert f"val/itm_{kind}_accuracy" in last
        assert re.search(rf"itm_{kind}_accuracy\s+test: [\d.]+\s+heldout: [\d.]+", printed), kind
    assert "val/mlm_loss" in last and "val/mim_loss" in last
    assert re.search(r"itc_top4_itm_recall@1\s+test: [\d.]+", printed)


def test_captioning_scores_greedy_and_beam(tmp_path, capsys):
    printed, last = train("caption-shapes", tmp_path, capsys, "--model.d_model=32", "--model.n_layers=1",
                          f"--model.image={VIT}", "--objective.report_images=4", "--objective.max_new_tokens=6")
    assert "val/loss" in last
    for name in ("greedy", "beam 3"):
        for split in ("test", "heldout"):
            assert re.search(rf"^{name}\s+{split}\s+BLEU-4 [\d.]+\s+CIDEr-D [\d.]+", printed, re.M), (name, split)


def test_fit_model_sets_vocabulary_and_answers():
    recipe = load_recipe(ROOT / "recipes" / "vqa-visualbert-shapes.yaml")
    fitted = fit_model(recipe.model, 77, 9)
    assert fitted.n_outputs == 9 and fitted.trunk["vocab_size"] == 77
    with pytest.raises(ConfigError, match="no classifier head"):
        fit_model(recipe.model.trunk if not isinstance(recipe.model.trunk, dict) else
                  load_recipe(ROOT / "recipes" / "itm-shapes.yaml").model.trunk, 77, 9)


def test_vqa_fine_tunes_a_pretrained_vlp_trunk(tmp_path, capsys):
    import formers

    train("vlp-shapes", tmp_path / "pre", capsys, *TINY_TRUNK, "--model.trunk.max_seq_len=40")
    pretrained = formers.load(tmp_path / "pre").trunk
    tuned_overrides = [*TINY_TRUNK, "--model.trunk.max_seq_len=40", f"--objective.pretrained={tmp_path / 'pre'}",
                       "--objective.prior_images=8", "--trainer.max_steps=1", "--trainer.optimizer.lr=1.0e-12"]
    train("vqa-visualbert-shapes", tmp_path / "tuned", capsys, *tuned_overrides)
    tuned = formers.load(tmp_path / "tuned").trunk
    # one step at lr 1e-12 (AdamW moves each weight by ~lr): the trunk is still the pretrained one
    for (name, a), b in zip(pretrained.state_dict().items(), tuned.state_dict().values(), strict=True):
        assert (a - b).abs().max() < 1e-6, name
    bad = main(["train", str(ROOT / "recipes" / "vqa-visualbert-shapes.yaml"), "--out", str(tmp_path / "bad"),
                *QUIET, *TINY_TRUNK, f"--objective.pretrained={tmp_path / 'pre'}"])
    assert bad == 1  # the command line prints the typed error in one line and exits non-zero
    assert "differs from model.trunk in (pretrained, recipe) = {'max_seq_len': (40, 32)}" in capsys.readouterr().err


def test_vlp_starts_from_a_pretrained_vlp_run(tmp_path, capsys):
    import formers

    train("vlp-shapes", tmp_path / "pre", capsys, *TINY_TRUNK)
    pretrained = formers.load(tmp_path / "pre")
    tuned_overrides = [*TINY_TRUNK, f"--objective.init_from={tmp_path / 'pre'}", "--objective.mlm_weight=0",
                       "--objective.n_train_images=16", "--trainer.max_steps=1", "--trainer.optimizer.lr=1.0e-12"]
    train("vlp-shapes", tmp_path / "tuned", capsys, *tuned_overrides)
    tuned = formers.load(tmp_path / "tuned")
    # one step at lr 1e-12 (AdamW moves each weight by ~lr): every weight is still the pretrained one
    for (name, a), b in zip(pretrained.state_dict().items(), tuned.state_dict().values(), strict=True):
        assert (a - b).abs().max() < 1e-6, name
    bad = main(["train", str(ROOT / "recipes" / "vlp-shapes.yaml"), "--out", str(tmp_path / "bad"), *QUIET,
                *TINY_TRUNK, "--model.embed_dim=8", f"--objective.init_from={tmp_path / 'pre'}"])
    assert bad == 1  # a checkpoint of another shape is refused with the typed error, not loaded in part
    assert "checkpoint (64, 32) vs model (8, 32)" in capsys.readouterr().err


def test_vqa_trains_and_reports_the_chosen_question_types_only(tmp_path, capsys):
    printed, _ = train("vqa-visualbert-shapes", tmp_path, capsys, "--objective.prior_images=16", *TINY_TRUNK,
                       '--objective.question_types=["colour", "count"]')
    header = re.search(r"by question type.*\n +all((?: +\S+)+)\n", printed).group(1).split()
    assert header == ["colour", "count"], printed
    for split in ("test", "test prior", "heldout", "heldout prior"):
        assert re.search(rf"^{split} +[\d.]+ +[\d.]+ +[\d.]+$", printed, re.M), (split, printed)


@pytest.mark.parametrize("types", [[], ["colour", "colour"], ["hue"]])
def test_vqa_refuses_bad_question_types(types):
    with pytest.raises(ConfigError, match=r"question_types=.* is not allowed; expected a non-empty list of distinct"):
        load_recipe(ROOT / "recipes" / "vqa-visualbert-shapes.yaml", {"objective.question_types": types})
