import math

import pytest
import torch

from formers.errors import ConfigError
from formers.optim import ScheduleConfig, build_scheduler, lr_multiplier


def mult(kind, step, total=100, **kw):
    return lr_multiplier(ScheduleConfig(kind=kind, **kw), step, total)


def test_warmup_ramps_linearly_to_the_peak():
    assert [mult("constant", s, warmup_steps=4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_cosine_from_peak_to_floor():
    assert mult("cosine", 10, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(1.0)
    assert mult("cosine", 55, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(0.55)  # midpoint of decay
    assert mult("cosine", 100, warmup_steps=10, min_lr_ratio=0.1) == pytest.approx(0.1)


def test_linear_step_exponential():
    assert mult("linear", 50, min_lr_ratio=0.0) == pytest.approx(0.5)
    assert [mult("step", s, step_size=10, gamma=0.5) for s in (9, 10, 25)] == [1.0, 0.5, 0.25]
    assert mult("exponential", 3, decay_rate=0.9) == pytest.approx(0.729)


def test_inverse_sqrt_is_noam():
    assert mult("inverse_sqrt", 15, warmup_steps=16) == pytest.approx(1.0)  # peak at the end of warmup
    assert mult("inverse_sqrt", 63, warmup_steps=16) == pytest.approx(0.5)  # 1/sqrt decay after it
    assert mult("inverse_sqrt", 3) == pytest.approx(1 / math.sqrt(4))


def test_scheduler_state_round_trip():
    def make():
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=1.0)
        return opt, build_scheduler(opt, ScheduleConfig(kind="cosine", warmup_steps=3), 20)

    opt, sched = make()
    for _ in range(7):
        opt.step()
        sched.step()
    opt2, sched2 = make()
    sched2.load_state_dict(sched.state_dict())
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()


@pytest.mark.parametrize("kw, field", [(dict(warmup_steps=-1), "warmup_steps"), (dict(gamma=0.0), "gamma"),
                                       (dict(kind="triangle"), "kind"), (dict(min_lr_ratio=2.0), "min_lr_ratio")])
def test_bad_values_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        ScheduleConfig(**kw)
