"""The ETA from the first steps, and the time budget: it stops a run, and resuming it gives the uninterrupted run."""

import pytest
import torch

from formers.data import TokenWindows
from formers.errors import ConfigError
from formers.models import GPT, GPTConfig
from formers.objectives import CausalLM
from formers.training import Trainer, TrainerConfig
from formers.training.pace import Pace


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_eta_is_measured_after_the_first_step_and_counts_the_evals():
    clock = Clock()
    pace = Pace(first_step=0, max_steps=500, max_minutes=None, eval_every=100, clock=clock)
    clock.now += 3.0
    pace.mark_pause(3.0)  # the first eval
    pace.timed_eval(3.0)
    clock.now += 10.0  # step 1: compilation, allocator growth; not timed
    assert pace.step_done(1) is None
    lines = []
    for step in range(2, 7):
        clock.now += 2.0
        lines.append(pace.step_done(step))
    assert lines[:4] == [None] * 4 and pace.step_s == pytest.approx(2.0)
    # 494 steps at 2 s, plus evals at 100..400 and the final one at 3 s each
    assert pace.remaining_s(6) == pytest.approx(494 * 2.0 + 5 * 3.0)
    assert lines[4].startswith("pace: 2.00 s/step (steps 2-6), 3.0 s per eval: step 500 in 16.7 min, at about ")
    assert pace.step_done(7) is None  # said once


def test_the_budget_stops_before_a_step_would_end_past_it():
    clock = Clock()
    pace = Pace(first_step=0, max_steps=500, max_minutes=1.0, eval_every=0, clock=clock)
    lines = []
    for step in range(1, 7):
        clock.now += 5.0
        lines.append(pace.step_done(step))
        assert not pace.out_of_time()
    # 30 s gone, 5 s/step: 6 more steps fit in the minute, so it stops near step 12
    assert "trainer.max_minutes=1 stops it near step 12" in lines[-1] and "--resume=true" in lines[-1]
    clock.now += 24.0
    assert not pace.out_of_time()  # 54 s + 5 s fits
    clock.now += 2.0
    assert pace.out_of_time()  # 56 s + 5 s does not
    assert not Pace(first_step=0, max_steps=5, max_minutes=None, eval_every=0, clock=clock).out_of_time()


def test_max_minutes_must_be_positive():
    with pytest.raises(ConfigError, match="max_minutes"):
        TrainerConfig(max_minutes=0)


def run(out, max_steps, *, max_minutes=None, resume=False):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, d_model=32, n_heads=4, n_layers=2, max_seq_len=32, dropout=0.1))
    source = TokenWindows(torch.randint(0, 30, (4000,), generator=torch.Generator().manual_seed(0)), seq_len=16,
                          batch_size=4, seed=1)
    cfg = TrainerConfig(max_steps=max_steps, max_minutes=max_minutes, precision="fp32", progress=False,
                        tensorboard=False, eval_every=0, log_every=1, schedule={"kind": "cosine", "warmup_steps": 2})
    result = Trainer(model, CausalLM(), source, config=cfg, out_dir=out).fit(resume=resume)
    return result, [r["train/loss"] for r in result["history"] if "train/loss" in r], model


def test_a_run_stopped_by_the_clock_resumes_into_the_uninterrupted_run(tmp_path):
    full, full_losses, full_model = run(tmp_path / "full", 6)
    assert full["out_of_time"] is False and full["step"] == 6
    stopped, _, _ = run(tmp_path / "split", 6, max_minutes=1e-6)  # 60 microseconds: one step is past it
    assert stopped["out_of_time"] is True and stopped["step"] == 1
    assert (tmp_path / "split" / "step-00000001").is_dir()  # stopped with a checkpoint
    resumed, resumed_losses, resumed_model = run(tmp_path / "split", 6, resume=True)
    assert resumed["step"] == 6 and resumed_losses == full_losses  # the schedule never depended on the clock
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
