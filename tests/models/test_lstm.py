"""The LSTM baseline: padding leaves the state untouched, generate threads the state, masks are refused."""

import pytest
import torch

from formers.errors import ConfigError
from formers.generation import generate, left_pad
from formers.models import LSTM, LSTMConfig


def model():
    torch.manual_seed(0)
    # a large embedding init so an untrained model's greedy outputs differ from token to token
    return LSTM(LSTMConfig(vocab_size=30, d_model=16, n_layers=2, dropout=0.0, init_std=1.0)).eval()


def test_left_padded_prompts_read_like_unpadded_ones():
    m = model()
    ids, mask = left_pad([[5, 6, 7, 8, 9], [11, 12]], pad_id=0)
    torch.testing.assert_close(m(ids, attention_mask=mask).logits[1, -1], m(torch.tensor([[11, 12]])).logits[0, -1])
    batched = generate(m, ids, attention_mask=mask, max_new_tokens=6)
    alone = generate(m, torch.tensor([[11, 12]]), max_new_tokens=6)
    assert torch.equal(batched[1, -6:], alone[0, -6:])


def test_the_state_cache_matches_rereading_the_whole_sequence():
    m, prompt = model(), torch.tensor([[3, 4, 5, 6]])
    cached = generate(m, prompt, max_new_tokens=8, use_cache=True)
    assert torch.equal(cached, generate(m, prompt, max_new_tokens=8, use_cache=False))
    assert len(set(cached[0, 4:].tolist())) > 1  # the check means something: outputs vary
    assert torch.equal(generate(m, prompt, max_new_tokens=8, num_beams=3)[:, :4], prompt)


def test_an_attention_mask_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="causal=False"):
        model()(torch.tensor([[1, 2]]), mask=torch.ones(1, 1, 2, 2, dtype=torch.bool))
