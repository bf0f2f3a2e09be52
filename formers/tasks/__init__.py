"""Tasks join a recipe to runnable parts: data + tokenizer -> model -> objective -> Trainer.

A task is registered under the name a recipe's `task:` field uses. Its `build` returns a
`Run` (everything the Trainer needs) and its `report` says what the trained model learned.
"""

from formers.tasks.base import TASKS, Recipe, Run, Task, load_recipe, register_task

__all__ = ["TASKS", "Recipe", "Run", "Task", "load_recipe", "register_task"]
