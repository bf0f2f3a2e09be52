"""Tasks join a recipe to runnable parts: data + tokenizer -> model -> objective -> Trainer.

A task is listed in `TASKS` (tasks/registry.py) under the name a recipe's `task:` field uses. Its `build` returns a
`Run` (everything the Trainer needs) and its `report` says what the trained model learned.
"""

from formers.tasks.base import Recipe, Run, Task, checkpoint_recipe, load_recipe
from formers.tasks.registry import TASKS, get_task

__all__ = ["TASKS", "Recipe", "Run", "Task", "checkpoint_recipe", "get_task", "load_recipe"]
