"""Tasks by name: the one static table of what a recipe's `task:` may say, imported when asked for.

Each entry names the module and the `Task` object in it. Nothing registers itself on import:
`get_task` imports only the module of the task a recipe names. Adding a task is one line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from formers.errors import ConfigError

if TYPE_CHECKING:
    from formers.tasks.base import Task

TASKS: dict[str, str] = {
    "causal_lm": "formers.tasks.language_modeling:CAUSAL_LM",
    "masked_lm": "formers.tasks.pretraining:MASKED_LM",
    "span_corruption": "formers.tasks.pretraining:SPAN_CORRUPTION",
    "denoising": "formers.tasks.pretraining:DENOISING",
    "sequence_seq2seq": "formers.tasks.seq2seq_tasks:SEQUENCE_SEQ2SEQ",
    "align_sft": "formers.tasks.alignment:ALIGN_SFT",
    "align_reward": "formers.tasks.alignment:ALIGN_REWARD",
    "align_dpo": "formers.tasks.alignment:ALIGN_DPO",
    "align_ppo": "formers.tasks.alignment:ALIGN_PPO",
    "captioning": "formers.tasks.captioning:CAPTIONING",
    "image_classification": "formers.tasks.image_classification:IMAGE_CLASSIFICATION",
    "clip": "formers.tasks.clip:CLIP_TASK",
    "image_tokenizer": "formers.tasks.image_tokenizer:IMAGE_TOKENIZER",
    "text_to_image": "formers.tasks.text_to_image:TEXT_TO_IMAGE",
    "vlp": "formers.tasks.vlp:VLP_TASK",
    "vqa": "formers.tasks.vqa:VQA",
}


def get_task(name: str) -> Task:
    """The Task a recipe's `task:` names, importing its module."""
    if name not in TASKS:
        raise ConfigError(f"task={name!r} is not allowed; expected one of {sorted(TASKS)}")
    module, attribute = TASKS[name].split(":")
    return getattr(importlib.import_module(module), attribute)
