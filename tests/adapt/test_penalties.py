"""EWC and L2-SP: zero at the anchor, growing with distance, composed with any objective; rehearsal mixing."""

import pytest
import torch

from formers.adapt import EWC, L2SP, REPLAY, Rehearsal, fisher_diagonal, objective_with_penalty, with_rehearsal
from formers.errors import CheckpointError, ConfigError, DataError
from formers.objectives import SequenceClassification
from tests.adapt.helpers import Batches, tiny_classifier


def shift(model, direction: dict[str, torch.Tensor], t: float) -> None:
    """Move the parameters to anchor + t * direction."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(direction["anchor"][name] + t * direction[name])


@pytest.fixture
def setup():
    model = tiny_classifier()
    batches = [Batches(seed=1).next_batch() for _ in range(3)]
    fisher = fisher_diagonal(model, SequenceClassification(), batches)
    g = torch.Generator().manual_seed(0)
    direction = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}
    direction["anchor"] = {n: p.detach().clone() for n, p in model.named_parameters()}
    return model, batches, fisher, direction


def test_fisher_is_the_mean_squared_gradient(setup):
    model, batches, fisher, _ = setup
    expected = torch.zeros_like(model.head.weight)
    for batch in batches:
        model.zero_grad()
        SequenceClassification()(model.eval(), batch)["loss"].backward()
        expected += model.head.weight.grad**2 / len(batches)
    torch.testing.assert_close(fisher["head.weight"], expected)
    assert torch.equal(fisher["trunk.nsp_head.weight"], torch.zeros_like(fisher["trunk.nsp_head.weight"]))  # unused
    normalized = fisher_diagonal(model, SequenceClassification(), batches, normalize=True)
    total = sum(f.sum() for f in normalized.values()) / sum(f.numel() for f in normalized.values())
    assert abs(float(total) - 1.0) < 1e-5


@pytest.mark.parametrize("make", [lambda m, f: EWC(m, f, strength=10.0), lambda m, f: L2SP(m, strength=10.0)],
                         ids=["ewc", "l2sp"])
def test_penalty_is_zero_at_the_anchor_and_grows_with_distance(setup, make):
    model, _, fisher, direction = setup
    penalty = make(model, fisher)
    assert float(penalty().detach()) == 0.0
    values = []
    for t in (0.01, 0.1, 1.0):
        shift(model, direction, t)
        values.append(float(penalty().detach()))
    assert 0 < values[0] < values[1] < values[2]
    assert values[2] == pytest.approx(100 * values[1], rel=1e-3)  # quadratic in the distance
    shift(model, direction, 0.0)
    assert float(penalty().detach()) == 0.0


def test_ewc_weighs_the_distance_by_the_fisher(setup):
    model, _, fisher, _ = setup
    ewc = EWC(model, fisher, strength=2.0)
    with torch.no_grad():
        model.head.bias += 0.5
    assert float(ewc().detach()) == pytest.approx(float((fisher["head.bias"] * 0.25).sum()), rel=1e-5)


def test_penalty_composes_with_an_objective(setup):
    model, batches, _, direction = setup
    l2 = L2SP(model, 3.0)  # anchored at the weights it sees now
    shift(model, direction, 0.1)
    task = SequenceClassification()(model, batches[0])
    task["loss"].backward()
    task_grad = model.head.bias.grad.clone()
    model.zero_grad()
    out = objective_with_penalty(SequenceClassification(), l2)(model, batches[0])
    assert set(out) >= {"loss", "task_loss", "penalty", "accuracy"} and float(out["penalty"]) > 0
    assert float(out["task_loss"]) == pytest.approx(task["loss"].item())
    assert float(out["loss"].detach()) == pytest.approx(float(out["task_loss"]) + float(out["penalty"]), rel=1e-6)
    out["loss"].backward()  # the penalty's gradient, strength * (theta - theta*), pulls back to the anchor
    torch.testing.assert_close(model.head.bias.grad, task_grad + 3.0 * 0.1 * direction["head.bias"])


def test_ewc_without_a_fisher_estimate_raises(setup):
    model, _, fisher, _ = setup
    with pytest.raises(ConfigError, match="EWC needs a Fisher estimate.*fisher_diagonal"):
        EWC(model, None, strength=1.0)
    with pytest.raises(ConfigError, match="EWC needs a Fisher estimate"):
        EWC(model, {}, strength=1.0)
    with pytest.raises(ConfigError, match="does not have"):
        EWC(model, {"nope.weight": torch.ones(1)}, strength=1.0)
    with pytest.raises(DataError, match="no batches"):
        fisher_diagonal(model, SequenceClassification(), [])


class Tagged:
    def __init__(self, tag):
        self.tag, self.step = tag, 0

    def next_batch(self):
        self.step += 1
        return {"tag": self.tag, "n": self.step}

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = state["step"]


def test_rehearsal_mixes_the_fraction_and_resumes_exactly():
    source = Rehearsal(Tagged("task"), Tagged("old"), fraction=0.25)
    batches = [source.next_batch() for _ in range(12)]
    assert [b["tag"] for b in batches] == ["task", "task", "task", "old"] * 3
    assert [b[REPLAY] for b in batches] == [b["tag"] == "old" for b in batches]
    state = source.state_dict()
    rest = [source.next_batch() for _ in range(5)]
    resumed = Rehearsal(Tagged("task"), Tagged("old"), fraction=0.25)
    resumed.load_state_dict(state)
    assert [resumed.next_batch() for _ in range(5)] == rest
    with pytest.raises(ConfigError, match="Rehearsal.fraction"):
        Rehearsal(Tagged("a"), Tagged("b"), fraction=1.0)
    with pytest.raises(CheckpointError):
        resumed.load_state_dict({"step": 1})


def test_rehearsal_objective_routes_each_batch_to_its_loss():
    objective = with_rehearsal(lambda m, b: {"loss": torch.tensor(1.0)},
                               lambda m, b: {"loss": torch.tensor(2.0), "accuracy": torch.tensor(0.5)})
    assert float(objective(None, {REPLAY: False})["loss"]) == 1.0
    out = objective(None, {REPLAY: True})
    assert float(out["loss"]) == 2.0 and float(out["replay_accuracy"]) == 0.5
