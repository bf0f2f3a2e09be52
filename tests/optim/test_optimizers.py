import pytest
import torch
from torch import nn

from formers.errors import ConfigError
from formers.optim import OptimizerConfig, build_optimizer, param_groups


def model():
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_decay_only_on_matrices_and_frozen_left_out():
    m = model()
    m[2].weight.requires_grad_(False)
    decay, no_decay = param_groups(m, 0.1)
    assert [p.shape for p in decay["params"]] == [torch.Size([8, 4])]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0


def test_per_group_lr_is_kept():
    m = model()
    opt = build_optimizer([{"params": list(m[0].parameters()), "lr": 0.5}, {"params": list(m[2].parameters())}],
                          OptimizerConfig(lr=0.01))
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01]


@pytest.mark.parametrize(
    "name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)]
)
def test_builds_each_optimizer(name, cls):
    assert isinstance(build_optimizer(model(), OptimizerConfig(name=name)), cls)


def test_bad_values_are_refused():
    with pytest.raises(ConfigError, match="optimizer.lr"):
        OptimizerConfig(lr=0.0)
    with pytest.raises(ConfigError, match="betas"):
        OptimizerConfig(betas=(0.9, 1.5))
