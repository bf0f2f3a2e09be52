"""Freezing, gradual unfreezing and layer-wise learning rates, checked through the real Trainer."""

import pytest
import torch

from formers.adapt import GradualUnfreezing, count_parameters, freeze, group_warmup, layer_groups, layerwise_lr
from formers.errors import ConfigError
from formers.objectives import SequenceClassification
from formers.training import Trainer
from tests.adapt.helpers import Batches, quiet, tiny_classifier


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_layer_groups_run_from_the_embeddings_to_the_head():
    groups = layer_groups(tiny_classifier())
    assert len(groups) == 5  # embeddings, 3 blocks, top
    assert groups[0][0] == "trunk.token_embedding.weight" and all("stack.blocks" not in n for n in groups[0])
    for i in range(3):
        assert groups[i + 1] and all(n.startswith(f"trunk.stack.blocks.{i}.") for n in groups[i + 1])
    assert groups[-1][-2:] == ["head.weight", "head.bias"] and "trunk.pooler.dense.weight" in groups[-1]
    assert sorted(n for g in groups for n in g) == sorted(n for n, _ in tiny_classifier().named_parameters())


def test_frozen_parameters_are_bit_identical_after_training(tmp_path):
    model = tiny_classifier()
    freeze(model.trunk)  # feature extraction
    before = snapshot(model)
    cfg = quiet(max_steps=4)  # weight decay 0.1: a frozen weight must not even decay
    Trainer(model, SequenceClassification(), Batches(), config=cfg, out_dir=tmp_path,
            param_groups_fn=layerwise_lr(1e-2, weight_decay=0.1)).fit()
    after = snapshot(model)
    assert all(torch.equal(after[n], before[n]) for n in before if n.startswith("trunk."))
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert count_parameters(model) == 32 * 3 + 3


def test_gradual_unfreezing_opens_one_group_from_the_top_every_interval(tmp_path):
    model = tiny_classifier()
    groups = layer_groups(model)
    unfreezing = GradualUnfreezing(model, every=2)
    assert [unfreezing.open_groups(s) for s in (0, 1, 2, 4, 6, 8, 100)] == [
        [4], [4], [3, 4], [2, 3, 4], [1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    params = dict(model.named_parameters())
    got_gradients = []

    def record(trainer):  # runs before the unfreezing callback: which groups did this step's backward reach?
        got_gradients.append({g for g, names in enumerate(groups) if params[names[-1]].grad is not None})

    Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=9), out_dir=tmp_path,
            param_groups_fn=layerwise_lr(1e-2), callbacks=[record, unfreezing]).fit()
    assert got_gradients == [set(unfreezing.open_groups(step)) for step in range(9)]
    assert got_gradients[0] == {4} and got_gradients[2] == {3, 4} and got_gradients[8] == {0, 1, 2, 3, 4}


def test_unfreezing_updates_only_open_groups(tmp_path):
    model = tiny_classifier()
    groups = layer_groups(model)
    before = snapshot(model)
    unfreezing = GradualUnfreezing(model, schedule=[0, 3])  # top at 0, block 2 at 3, the rest never
    Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=2), out_dir=tmp_path / "a",
            param_groups_fn=layerwise_lr(1e-2), callbacks=[unfreezing]).fit()
    moved = {g for g, names in enumerate(groups) if any(not torch.equal(model.get_parameter(n), before[n])
                                                        for n in names)}
    assert moved == {4}  # 2 steps: the top group alone
    assert [model.get_parameter(n).requires_grad for n in groups[3][:1]] == [False]


def test_bad_unfreezing_schedules_raise():
    with pytest.raises(ConfigError, match="lists 6 groups but the model has 5 .*embeddings, block 0"):
        GradualUnfreezing(tiny_classifier(), schedule=[0, 1, 2, 3, 4, 5])
    with pytest.raises(ConfigError, match="exactly one of every"):
        GradualUnfreezing(tiny_classifier())
    with pytest.raises(ConfigError, match="non-decreasing"):
        GradualUnfreezing(tiny_classifier(), schedule=[3, 1])
    with pytest.raises(ConfigError, match="no formers.nn.Block"):
        layer_groups(torch.nn.Linear(2, 2))


def test_unfreezing_refuses_an_optimizer_without_the_frozen_groups(tmp_path):
    model = tiny_classifier()
    unfreezing = GradualUnfreezing(model, every=1)
    trainer = Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=1), out_dir=tmp_path,
                      callbacks=[unfreezing])  # default groups leave frozen parameters out
    with pytest.raises(ConfigError, match="param_groups_fn=layerwise_lr"):
        trainer.train_step()


def test_layerwise_decay_assigns_every_parameter_its_layer_lr(tmp_path):
    model = tiny_classifier()
    trainer = Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=1), out_dir=tmp_path,
                      param_groups_fn=layerwise_lr(1.0, 0.5, weight_decay=0.1, head=("head",), head_lr=4.0))
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert len(lr_of) == sum(len(g["params"]) for g in trainer.optimizer.param_groups)  # each exactly once
    groups = layer_groups(model)
    for name, p in model.named_parameters():
        depth = next(i for i, g in enumerate(groups) if name in g)
        expected = 4.0 if name.startswith("head.") else 0.5 ** (len(groups) - 1 - depth)
        assert lr_of[id(p)] == (expected, 0.1 if p.ndim >= 2 else 0.0), name
    assert lr_of[id(model.trunk.token_embedding.weight)][0] == 0.5**4  # embeddings: 4 groups below the top
    with pytest.raises(ConfigError, match="'classifier' matches no parameter.*'head', 'trunk'"):
        layerwise_lr(1.0, head=("classifier",))(model)


def test_group_warmup_ramps_the_trunk_while_the_head_runs_at_full_lr(tmp_path):
    model = tiny_classifier()
    seen = []
    trainer = Trainer(model, SequenceClassification(), Batches(), config=quiet(max_steps=5), out_dir=tmp_path,
                      param_groups_fn=layerwise_lr(1.0, head=("head",), head_lr=2.0, warmup=4),
                      callbacks=[group_warmup, lambda t: seen.append({g["name"]: g["lr"]
                                                                      for g in t.optimizer.param_groups})])
    trainer.fit()
    assert [s["head"] for s in seen] == [2.0] * 5
    assert [s["block 0"] for s in seen] == [0.25, 0.5, 0.75, 1.0, 1.0]
