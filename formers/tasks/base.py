"""Recipe (the YAML shape), Task and Run."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from formers.config import Config, apply_overrides, check, read_yaml
from formers.data import TokenizerConfig
from formers.errors import CheckpointError, ConfigError
from formers.registry import model_config_from_dict
from formers.storage import read_json, resolve_checkpoint
from formers.tasks.registry import get_task
from formers.training import TrainerConfig


@dataclasses.dataclass(kw_only=True)
class DataConfig(Config):
    corpus: str = "pydocs"  # "pydocs" (Python's own docs, embedded) or a path to a .txt file / folder
    val_fraction: float = 0.05
    seq_len: int = 256  # tokens per training window
    max_chars: int | None = None  # use only the first max_chars characters (quick runs)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 < self.val_fraction < 1.0, "data.val_fraction", self.val_fraction, "a value in (0, 1)")
        check(self.seq_len > 0, "data.seq_len", self.seq_len, "a positive int")


@dataclasses.dataclass(kw_only=True)
class SampleConfig(Config):
    """What to generate after training, to show what the model learned."""

    prompts: list[str] = dataclasses.field(default_factory=lambda: ["The "])
    max_new_tokens: int = 200
    do_sample: bool = True
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = 0.95
    seed: int = 0


@dataclasses.dataclass(kw_only=True)
class Recipe(Config):
    task: str = "causal_lm"
    description: str = ""
    expect: dict[str, float] = dataclasses.field(default_factory=dict)  # stated quality, e.g. {"val/loss": 1.6}
    model: Any = None  # the model family's config (resolved from model.family)
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    objective: Any = None  # the task's objective config
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    sample: SampleConfig = dataclasses.field(default_factory=SampleConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str | None = None) -> Recipe:
        data = dict(data)
        task = get_task(data.get("task", "causal_lm"))
        model = model_config_from_dict(data.pop("model", None) or {}, where="model")
        objective = task.objective_config.from_dict(data.pop("objective", None) or {}, where="objective")
        recipe = super().from_dict(data, where=where or "recipe")
        recipe.model, recipe.objective = model, objective
        return recipe


@dataclasses.dataclass
class Run:
    """Everything the Trainer needs, built from a recipe."""

    model: Any
    objective: Callable
    train_source: Any
    val_batches: Sequence[dict]
    tokenizer: Any = None


@dataclasses.dataclass
class Task:
    objective_config: type[Config]
    make_objective: Callable[[Recipe], Callable]  # recipe -> objective(model, batch) -> {"loss": ...}
    build: Callable[[Recipe], Run]  # recipe -> model, objective, data
    report: Callable[[Recipe, Run], str]  # a human-readable account of what the model learned
    eval_data: Callable[[Recipe, Any], list[dict]]  # (recipe, saved tokenizer) -> validation batches
    # A task with its own loop (PPO: rollouts, then updates) instead of the Trainer's:
    # (recipe, out_dir, resume) -> {"history": [...], "test": {metric: value}}; `formers train` runs it.
    own_loop: Callable[[Recipe, Any, bool], dict] | None = None
    # Figures measured after training beyond the validation loss (zero-shot accuracy, retrieval recall):
    # (recipe, run) -> {"test/...": value}; `formers train` and `formers eval` print them, `expect:` may name them.
    test_metrics: Callable[[Recipe, Run], dict[str, float]] | None = None


def expectation_lines(expect: dict[str, float], metrics: dict[str, float]) -> list[str]:
    """Compare a recipe's stated quality with what the run reached (losses are upper bounds, others lower)."""
    lines = []
    for key, bound in sorted(expect.items()):
        if key not in metrics:
            lines.append(f"expect {key}: not measured by this task")
            continue
        upper = "loss" in key or "perplexity" in key
        met = metrics[key] <= bound if upper else metrics[key] >= bound
        verdict = "met" if met else "MISSED"
        lines.append(f"expect {key} {'<=' if upper else '>='} {bound}: {metrics[key]:.4f} ({verdict})")
    return lines


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a YAML recipe, apply dotted overrides, validate everything."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; see the recipes/ folder for examples")
    try:
        data = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {e}") from None
    return Recipe.from_dict(apply_overrides(data, overrides or {}), where=str(path.name))


def checkpoint_recipe(checkpoint: str | Path) -> Recipe:
    """The recipe a checkpoint was trained with: `formers train` saves it as extra.json beside the weights."""
    folder = resolve_checkpoint(checkpoint)
    extra = folder / "extra.json"
    if not extra.is_file():
        raise CheckpointError(f"{folder} has no extra.json with its recipe: it was not written by `formers train` "
                              "(or by a study that saves like it)")
    return Recipe.from_dict(read_json(extra)["recipe"], where=str(extra))
