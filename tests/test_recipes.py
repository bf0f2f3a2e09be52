"""Every shipped recipe loads, validates and builds its model; bad recipes fail by name."""

from pathlib import Path

import pytest

from formers.errors import ConfigError
from formers.registry import build_model
from formers.tasks import TASKS, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 2


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.task in TASKS
    assert recipe.expect, f"{path.name} must state the quality it reaches in `expect:`"
    assert build_model(recipe.model) is not None
    assert load_recipe(path, {"trainer.max_steps": 3}).trainer.max_steps == 3


def test_unknown_and_ill_typed_fields_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {family: gpt, n_layerz: 2}\n")
    with pytest.raises(ConfigError, match=r"model: unknown field\(s\) \['n_layerz'\]"):
        load_recipe(bad)
    bad.write_text("model: {family: gpt}\ntrainer: {max_steps: 1.5}\n")
    with pytest.raises(ConfigError, match=r"trainer.max_steps=1.5 is not allowed; expected int"):
        load_recipe(bad)
    bad.write_text("model: {family: gpt, n_heads: 3, d_model: 64}\n")
    with pytest.raises(ConfigError, match="n_heads=3.*divisor of d_model=64"):
        load_recipe(bad)
    bad.write_text("model: {family: nope}\n")
    with pytest.raises(ConfigError, match="model.family='nope'"):
        load_recipe(bad)
