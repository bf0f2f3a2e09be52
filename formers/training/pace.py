"""How fast one `fit` goes: the ETA measured from its first steps, and its time budget.

The same recipe takes 7 minutes on a CPU with AMX and over 40 on a 2-core AVX2 laptop, so a run
says early how long it will take, and `trainer.max_minutes` bounds it. The budget stops a run; it
never reshapes it: the LR schedule stays the one `max_steps` defines, so a run stopped by the clock
and resumed (`--resume=true`) computes exactly the steps of one uninterrupted run. A schedule
squeezed into the measured time instead would make the trained weights depend on how busy the
machine was during the first steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Pace:
    """Step times of one `fit`, from its start (`clock` is injectable for tests)."""

    SKIP = 1  # the first step pays one-time costs (allocator growth, lazy init, compilation): not timed
    WINDOW = 5  # steps timed after it before the ETA is printed

    def __init__(self, *, first_step: int, max_steps: int, max_minutes: float | None, eval_every: int,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock, self.start = clock, clock()
        self.first_step, self.max_steps, self.eval_every = first_step, max_steps, eval_every
        self.budget_s = None if max_minutes is None else 60.0 * max_minutes
        self.eval_s = 0.0  # one evaluation's time, from the first one timed
        self.last_step_s = 0.0
        self._mark: tuple[int, float] | None = None  # (step, time) where the timed window starts
        self._step_end = self.start
        self.step_s: float | None = None  # mean step time over the window, once measured

    def timed_eval(self, seconds: float) -> None:
        self.eval_s = self.eval_s or seconds

    def step_done(self, step: int) -> str | None:
        """Record a finished step; returns the ETA line once, when the window has been timed."""
        now = self.clock()
        self.last_step_s, self._step_end = now - self._step_end, now
        if step == self.first_step + self.SKIP:
            self._mark = (step, now)
        elif self._mark is not None and self.step_s is None and step - self._mark[0] == self.WINDOW:
            self.step_s = (now - self._mark[1]) / self.WINDOW
            return self.eta_line(step) if step < self.max_steps else None
        return None

    def mark_pause(self, seconds: float) -> None:
        """An eval or a checkpoint ran between steps: not step time."""
        self._step_end += seconds
        if self._mark is not None and self.step_s is None:
            self._mark = (self._mark[0], self._mark[1] + seconds)

    def remaining_s(self, step: int) -> float:
        """Time to max_steps from `step` at the measured pace, evaluations included."""
        evals = (self.max_steps - 1) // self.eval_every - step // self.eval_every if self.eval_every else 0
        return (self.max_steps - step) * (self.step_s or self.last_step_s) + (max(evals, 0) + 1) * self.eval_s

    def eta_line(self, step: int) -> str:
        start, end = step - self.WINDOW + 1, step
        line = (f"pace: {self.step_s:.2f} s/step (steps {start}-{end})"
                + (f", {self.eval_s:.1f} s per eval" if self.eval_s else "")
                + f": step {self.max_steps} in {_minutes(self.remaining_s(step))}")
        if self.budget_s is None or self.clock() - self.start + self.remaining_s(step) <= self.budget_s:
            return line + f", at about {time.strftime('%H:%M', time.localtime(time.time() + self.remaining_s(step)))}"
        reach = step + int((self.budget_s - (self.clock() - self.start)) / self.step_s)
        return (line + f"; trainer.max_minutes={self.budget_s / 60:g} stops it near step {max(reach, step)} "
                f"with an eval and a checkpoint (--resume=true continues toward {self.max_steps})")

    def out_of_time(self) -> bool:
        """Whether one more step would end past the budget."""
        if self.budget_s is None:
            return False
        return self.clock() - self.start + (self.step_s or self.last_step_s) > self.budget_s


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
