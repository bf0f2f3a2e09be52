import pytest
import torch
from torch import nn

from formers.errors import ConfigError
from formers.optim import OptimizerConfig, build_optimizer, param_groups


def model():
    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def test_decay_only_on_matrices_and_frozen_left_out():
    m = model()
    m[3].weight.requires_grad_(False)
    decay, no_decay = param_groups(m, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    # embedding and linear weights decay; biases and the LayerNorm gain/shift do not; frozen is absent
    assert [p is q for p, q in zip(decay["params"], [m[0].weight, m[1].weight], strict=True)] == [True, True]
    assert [p is q for p, q in zip(no_decay["params"], [m[1].bias, m[2].weight, m[2].bias, m[3].bias],
                                   strict=True)] == [True] * 4


def test_tied_parameters_appear_once():
    m = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    m[1].weight = m[0].weight
    decay, no_decay = param_groups(m, 0.1)
    assert len(decay["params"]) == 1 and no_decay["params"] == []


def test_split_reaches_the_optimizer():
    m = model()
    opt = build_optimizer(m, OptimizerConfig(weight_decay=0.05))
    assert [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups] == [(3, 0.05), (4, 0.0)]
    assert all(g["lr"] == 3e-4 and g["betas"] == (0.9, 0.95) for g in opt.param_groups)


def test_per_group_lr_and_labels_are_kept():
    m = model()
    groups = [{"params": m[1].parameters(), "lr": 0.5, "name": "low"}, {"params": m[3].weight},
              {"params": [], "lr": 9.0}]
    opt = build_optimizer(groups, OptimizerConfig(lr=0.01, weight_decay=0.2))
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01]  # the empty group is dropped
    assert opt.param_groups[0]["name"] == "low" and len(opt.param_groups[0]["params"]) == 2
    assert [g["weight_decay"] for g in opt.param_groups] == [0.2, 0.2]  # the config fills what a group omits


@pytest.mark.parametrize(
    "name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)]
)
def test_builds_each_optimizer(name, cls):
    opt = build_optimizer(model(), OptimizerConfig(name=name, lr=0.1, momentum=0.5))
    assert type(opt) is cls
    assert opt.param_groups[0]["fused"] is True  # CPU float parameters: fused kernels
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.5


def test_fused_false_uses_foreach():
    opt = build_optimizer(model(), OptimizerConfig(fused=False))
    assert opt.param_groups[0]["foreach"] is True and not opt.param_groups[0]["fused"]


def test_adamw_step_matches_torch_reference():
    torch.manual_seed(0)
    m = nn.Linear(3, 2)
    ref = nn.Linear(3, 2)
    ref.load_state_dict(m.state_dict())
    opt = build_optimizer(m, OptimizerConfig(lr=0.1, weight_decay=0.1, fused=False))
    ref_opt = torch.optim.AdamW([{"params": [ref.weight], "weight_decay": 0.1},
                                 {"params": [ref.bias], "weight_decay": 0.0}], lr=0.1, betas=(0.9, 0.95))
    x = torch.randn(4, 3)
    for mod, o in ((m, opt), (ref, ref_opt)):
        for _ in range(3):
            o.zero_grad()
            mod(x).square().sum().backward()
            o.step()
    torch.testing.assert_close(m.weight, ref.weight)
    torch.testing.assert_close(m.bias, ref.bias)


def test_no_trainable_parameters_is_a_clear_error():
    m = model().requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer(m, OptimizerConfig())


@pytest.mark.parametrize("kw, field", [
    (dict(lr=0.0), "optimizer.lr"), (dict(lr=-1e-3), "optimizer.lr"), (dict(weight_decay=-0.1), "weight_decay"),
    (dict(betas=(0.9, 1.5)), "betas"), (dict(betas=(0.9,)), "betas"), (dict(eps=0.0), "eps"),
    (dict(momentum=1.0), "momentum"), (dict(name="lion"), "name"), (dict(fused="yes"), "fused"),
])
def test_bad_values_are_refused(kw, field):
    with pytest.raises(ConfigError, match=field):
        OptimizerConfig(**kw)
