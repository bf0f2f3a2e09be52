"""Rehearsal (experience replay; Robins 1995, "Catastrophic forgetting, rehearsal and pseudorehearsal"):
keep training on a fraction of ORIGINAL-task batches while learning the new task.

`Rehearsal(task_source, replay_source, fraction)` is a batch source: step i draws from the replay
source when floor((i + 1) f) > floor(i f), a fixed interleaving (f = 0.25: every 4th step), and
marks those batches with `batch[REPLAY] = True`. The two tasks have different losses, so
`with_rehearsal(task_objective, replay_objective)` routes each batch to its own. The whole resume
state is the step counter plus the two sources' states.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from torch import nn

from formers.config import check
from formers.errors import CheckpointError

REPLAY = "replay"  # batch key: True on batches of the original task

Objective = Callable[[nn.Module, dict], dict]


class Rehearsal:
    """Interleave `fraction` of the steps from `replay` (original task) into `task` (the new task)."""

    def __init__(self, task, replay, fraction: float) -> None:
        check(0.0 <= fraction < 1.0, "Rehearsal.fraction", fraction, "a value in [0, 1) (share of replay steps)")
        self.task, self.replay, self.fraction = task, replay, fraction
        self.step = 0

    def is_replay(self, step: int) -> bool:
        return math.floor((step + 1) * self.fraction) > math.floor(step * self.fraction)

    def next_batch(self) -> dict:
        replay = self.is_replay(self.step)
        batch = (self.replay if replay else self.task).next_batch()
        self.step += 1
        return {**batch, REPLAY: replay}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "task": self.task.state_dict(), "replay": self.replay.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"step", "task", "replay"} <= set(state):
            raise CheckpointError(f"rehearsal source state {state!r} needs 'step', 'task' and 'replay'")
        self.step = state["step"]
        self.task.load_state_dict(state["task"])
        self.replay.load_state_dict(state["replay"])


def with_rehearsal(task_objective: Objective, replay_objective: Objective) -> Objective:
    """An objective that scores replay batches with the original task's loss, the rest with the new one.

    Replay metrics are reported as replay_<name> (their loss also as "loss", which the Trainer steps on).
    """

    def objective(model: nn.Module, batch: dict) -> dict:
        if not batch.get(REPLAY, False):
            return task_objective(model, batch)
        metrics = replay_objective(model, batch)
        weight = {"n_targets": metrics.pop("n_targets")} if "n_targets" in metrics else {}
        return {"loss": metrics["loss"], **{f"replay_{k}": v for k, v in metrics.items()}, **weight}

    return objective
