import math

import pytest
import torch

from formers.errors import SequenceTooLongError
from formers.nn.embeddings import LearnedPositions, RotaryPositions, sinusoid_table
from formers.nn.position_bias import ALiBiPositions, T5RelativePositions, alibi_slopes, relative_position_bucket


def test_rotary_scores_depend_only_on_relative_offset():
    rope = RotaryPositions(16)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(i, j):
        qi = rope.rotary(torch.tensor([i])).rotate(q)
        kj = rope.rotary(torch.tensor([j])).rotate(k)
        return (qi * kj).sum()

    torch.testing.assert_close(score(3, 1), score(10, 8), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(score(0, 5), score(20, 25), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2))


def test_rotary_preserves_norm():
    rope = RotaryPositions(8)
    x = torch.randn(2, 3, 5, 8)
    y = rope.rotary(torch.arange(5)).rotate(x)
    torch.testing.assert_close(x.norm(dim=-1), y.norm(dim=-1))


def test_sinusoid_table_matches_the_paper_formula():
    table = sinusoid_table(torch.arange(6), 8)
    pos, i = 5, 3
    assert table[pos, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 8)), abs=1e-6)
    assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 8)), abs=1e-6)


def test_learned_positions_refuse_positions_past_the_limit():
    pos = LearnedPositions(8, 4)
    assert pos.absolute(torch.arange(8)[None]).shape == (1, 8, 4)
    with pytest.raises(SequenceTooLongError, match="max_seq_len=8"):
        pos.absolute(torch.arange(9)[None])


def test_alibi_slopes_follow_the_paper():
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    assert alibi_slopes(6).shape == (6,)
    bias = ALiBiPositions(8).bias(4, 4, torch.device("cpu"))
    assert bias.shape == (1, 8, 4, 4)
    assert bias[0, 0, 3, 0].item() == pytest.approx(-0.5 * 3)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_buckets_match_transformers(bidirectional):
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-300, 300)[None, :]
    ours = relative_position_bucket(rel, bidirectional, 32, 128)
    ref = T5Attention._relative_position_bucket(rel, bidirectional=bidirectional, num_buckets=32, max_distance=128)
    assert torch.equal(ours, ref)


def test_t5_bias_shape_and_cache_offset():
    t5 = T5RelativePositions(4, bidirectional=False)
    full = t5.bias(6, 6, torch.device("cpu"))
    assert full.shape == (1, 4, 6, 6)
    torch.testing.assert_close(t5.bias(2, 6, torch.device("cpu")), full[:, :, -2:])
