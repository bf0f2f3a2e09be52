"""Attention rollout against hand-computed two-layer cases."""

import pytest
import torch

from formers.errors import ConfigError
from formers.interpret.rollout import attention_rollout, discard_weakest, fuse_heads

A1 = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
A2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]])


def one_head(a: torch.Tensor) -> torch.Tensor:
    return a[None, None]  # (B=1, H=1, T, T)


def test_residual_is_added_and_layers_multiply_first_to_last():
    # (A1 + I)/2 = [[1, 0], [.25, .75]]; (A2 + I)/2 = [[.75, .25], [0, 1]]; R = A2' @ A1'
    expected = torch.tensor([[0.75 + 0.25 * 0.25, 0.25 * 0.75], [0.25, 0.75]])
    rollout = attention_rollout([one_head(A1), one_head(A2)])
    torch.testing.assert_close(rollout[0], expected)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(1, 2))
    without = attention_rollout(torch.stack([one_head(A1), one_head(A2)]), residual=False)
    torch.testing.assert_close(without[0], A2 @ A1)


def test_head_fusion_mean_max_min():
    heads = torch.stack([A1, A2])[None]  # (1, 2, T, T)
    torch.testing.assert_close(fuse_heads(heads, "mean")[0], (A1 + A2) / 2)
    torch.testing.assert_close(fuse_heads(heads, "max")[0], torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
    torch.testing.assert_close(fuse_heads(heads, "min")[0], torch.tensor([[0.5, 0.0], [0.0, 0.5]]))
    # max fusion rows no longer sum to 1: the renormalisation brings them back ([[1, .25], [.25, 1]] / 1.25)
    rolled = attention_rollout([heads], head_fusion="max")
    torch.testing.assert_close(rolled[0], torch.tensor([[0.8, 0.2], [0.2, 0.8]]))


def test_discard_ratio_drops_each_rows_weakest_but_never_the_diagonal():
    a = torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.4, 0.5, 0.1]]])
    kept = discard_weakest(a, 0.34)  # one weight per row
    torch.testing.assert_close(kept, torch.tensor([[[0.1, 0.6, 0.0], [0.5, 0.2, 0.0], [0.0, 0.5, 0.1]]]))
    rolled = attention_rollout([a[None]], discard_ratio=0.34)  # (kept + I) / 2, rows renormalised
    row0 = torch.tensor([1.1, 0.6, 0.0]) / 1.7
    torch.testing.assert_close(rolled[0, 0], row0)


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="head_fusion"):
        attention_rollout([one_head(A1)], head_fusion="median")
    with pytest.raises(ConfigError, match="discard_ratio"):
        attention_rollout([one_head(A1)], discard_ratio=1.0)
    with pytest.raises(ConfigError, match="square"):
        attention_rollout([torch.ones(1, 1, 2, 3) / 3])
