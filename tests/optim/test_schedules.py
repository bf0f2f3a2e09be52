import json
import math

import pytest
import torch

from formers.errors import ConfigError
from formers.optim import ScheduleConfig, build_scheduler, lr_multiplier


def mult(kind, step, total=100, **kw):
    return lr_multiplier(ScheduleConfig(kind=kind, **kw), step, total)


def test_warmup_ramps_linearly_to_the_peak():
    assert [mult("constant", s, warmup_steps=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert mult("cosine", 0, warmup_steps=10) == pytest.approx(0.1)  # the first step already moves
    assert mult("constant", 0) == 1.0  # no warmup: the peak from step 0


def test_cosine_from_peak_to_floor():
    # decay spans steps 10..100; its midpoint (step 55) is halfway between peak and floor
    assert mult("cosine", 10, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(1.0)
    assert mult("cosine", 55, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(0.55)
    assert mult("cosine", 40, warmup_steps=10, min_lr_ratio=0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    assert mult("cosine", 100, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(0.1)
    assert mult("cosine", 500, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(0.1)  # past the end: the floor


def test_linear_decay():
    assert mult("linear", 50, min_lr_ratio=0.0) == pytest.approx(0.5)
    assert mult("linear", 60, warmup_steps=20, min_lr_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert mult("linear", 100, min_lr_ratio=0.2) == pytest.approx(0.2)


def test_step_decay_boundaries_count_from_the_end_of_warmup():
    assert [mult("step", s, step_size=10, gamma=0.5) for s in (0, 9, 10, 19, 20, 25)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert [mult("step", s, warmup_steps=5, step_size=10, gamma=0.1) for s in (14, 15)] == [1.0, pytest.approx(0.1)]


def test_exponential_decay():
    assert mult("exponential", 3, decay_rate=0.9) == pytest.approx(0.729)
    assert mult("exponential", 7, warmup_steps=4, decay_rate=0.5) == pytest.approx(0.125)


def test_inverse_sqrt_is_noam():
    # Vaswani et al. 2017: min(s / w, sqrt(w / s)) with s = step + 1, normalised to peak 1
    assert mult("inverse_sqrt", 15, warmup_steps=16) == pytest.approx(1.0)  # peak at the end of warmup
    assert mult("inverse_sqrt", 7, warmup_steps=16) == pytest.approx(0.5)  # warmup ramp
    assert mult("inverse_sqrt", 63, warmup_steps=16) == pytest.approx(0.5)  # 4x the steps: half the LR
    assert mult("inverse_sqrt", 255, warmup_steps=16) == pytest.approx(0.25)
    assert mult("inverse_sqrt", 3) == pytest.approx(1 / math.sqrt(4))  # no warmup: 1 / sqrt(step + 1)
    assert mult("inverse_sqrt", 0) == 1.0


def test_scheduler_scales_each_group_base_lr():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=0.5)
    sched = build_scheduler(opt, ScheduleConfig(kind="constant", warmup_steps=4), 10)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.025]  # step 0 of warmup
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.05]


def make_scheduler(total=20):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    return opt, build_scheduler(opt, ScheduleConfig(kind="cosine", warmup_steps=3), total)


def test_scheduler_state_round_trips_through_json():
    opt, sched = make_scheduler()
    for _ in range(7):
        opt.step()
        sched.step()
    saved = json.loads(json.dumps(sched.state_dict()))  # what a checkpoint's scheduler.json holds
    opt2, sched2 = make_scheduler()
    sched2.load_state_dict(saved)
    opt2.load_state_dict(opt.state_dict())
    assert sched2.get_last_lr() == sched.get_last_lr()
    lrs, lrs2 = [], []
    for o, s, out in ((opt, sched, lrs), (opt2, sched2, lrs2)):
        for _ in range(15):
            o.step()
            s.step()
            out.append(o.param_groups[0]["lr"])
    assert lrs == lrs2
    assert lrs[0] == pytest.approx(lr_multiplier(ScheduleConfig(kind="cosine", warmup_steps=3), 8, 20))


def test_editing_the_config_after_build_does_not_change_the_schedule():
    config = ScheduleConfig(kind="constant")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, config, 10)
    config.kind = "exponential"
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == 1.0


def test_negative_step_is_refused():
    with pytest.raises(ValueError, match="step=-1"):
        mult("cosine", -1)


@pytest.mark.parametrize("kw, field", [
    (dict(warmup_steps=-1), "warmup_steps"), (dict(gamma=0.0), "gamma"), (dict(gamma=1.5), "gamma"),
    (dict(kind="triangle"), "kind"), (dict(min_lr_ratio=2.0), "min_lr_ratio"),
    (dict(min_lr_ratio=-0.1), "min_lr_ratio"),
    (dict(step_size=0), "step_size"), (dict(decay_rate=0.0), "decay_rate"), (dict(warmup_steps=1.5), "warmup_steps"),
])
def test_bad_values_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        ScheduleConfig(**kw)


def test_from_dict_round_trip():
    config = ScheduleConfig(kind="step", warmup_steps=5, step_size=7, gamma=0.3)
    assert ScheduleConfig.from_dict(config.to_dict()) == config
