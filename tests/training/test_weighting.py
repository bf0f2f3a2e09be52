"""Gradient accumulation weighs by targets: k micro-batches with uneven target counts = one large batch.

(Two ranks against one process: test_distributed.py, with weighting_worker.py.)
"""

import math

import pytest
import torch

from formers.errors import DataError
from formers.objectives import IGNORE_INDEX, CausalLM
from formers.objectives.causal_lm import Weighted
from tests.training.weighting import TARGETS, joined, micro_batches, relative_error, step_gradients

# The same fp32 sums in another order (per micro-batch, scaled after) differ by ~1e-7 relative; 1e-6
# leaves room and is still four orders of magnitude below what averaging micro-batch means gets wrong.
TOL = 1e-6


def per_batch_mean(model, batch):
    """CausalLM without n_targets: each micro-batch then weighs 1, as the Trainer did before."""
    metrics = CausalLM()(model, batch)
    metrics.pop("n_targets")
    return metrics


def test_accumulated_micro_batches_with_uneven_targets_equal_one_large_batch(tmp_path):
    batches = micro_batches()
    assert [int((b["labels"] != IGNORE_INDEX).sum()) for b in batches] == TARGETS  # 14, 0, 3, 9
    big, big_metrics, _ = step_gradients(CausalLM(), [joined(batches)], 1, tmp_path / "big")
    accumulated, metrics, _ = step_gradients(CausalLM(), batches, len(batches), tmp_path / "accumulated")
    assert relative_error(accumulated, big) < TOL
    for key in ("loss", "accuracy"):
        assert math.isclose(metrics[key], big_metrics[key], rel_tol=TOL, abs_tol=1e-9), key
    # the rule it replaces, one weight per micro-batch, is far off on these batches
    assert relative_error(step_gradients(per_batch_mean, batches, len(batches), tmp_path / "old")[0], big) > 1e-2


def test_without_n_targets_each_micro_batch_weighs_one(tmp_path):
    batches = micro_batches()
    singles = [step_gradients(per_batch_mean, [b], 1, tmp_path / f"one-{i}")[0] for i, b in enumerate(batches)]
    mean = {k: sum(s[k] for s in singles) / len(singles) for k in singles[0]}
    accumulated, _, _ = step_gradients(per_batch_mean, batches, len(batches), tmp_path / "accumulated")
    assert relative_error(accumulated, mean) < TOL


def test_evaluation_weighs_by_targets_and_pairs_by_their_count(tmp_path):
    batches = micro_batches()
    _, _, trainer = step_gradients(CausalLM(), batches[:1], 1, tmp_path)
    apart, together = trainer.evaluate(batches), trainer.evaluate([joined(batches)])
    for key in ("val/loss", "val/accuracy"):
        assert math.isclose(apart[key], together[key], rel_tol=TOL, abs_tol=1e-9), key

    def tagged(model, batch):  # a per-batch metric i, counted 1 + i times
        return {**CausalLM()(model, batch), "tag": Weighted(batch["tag"].float(), 1 + int(batch["tag"]))}

    trainer.objective = tagged
    out = trainer.evaluate([{**b, "tag": torch.tensor(i)} for i, b in enumerate(batches)])
    assert out["val/tag"] == pytest.approx((0 * 1 + 1 * 2 + 2 * 3 + 3 * 4) / (1 + 2 + 3 + 4))


def test_a_step_without_any_target_is_refused(tmp_path):
    empty = [{**b, "labels": torch.full_like(b["labels"], IGNORE_INDEX)} for b in micro_batches()[:2]]
    with pytest.raises(DataError, match="no targets"):
        step_gradients(CausalLM(), empty, 2, tmp_path)
