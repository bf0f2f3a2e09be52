"""BERT's own behaviour beyond the contract battery: heads, segments, the position limit."""

import pytest
import torch

from formers.errors import SequenceTooLongError, TokenOutOfVocabError
from formers.models import Bert, BertConfig

TINY = dict(vocab_size=50, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Bert(BertConfig(**TINY)).eval()


def test_heads_read_the_trunk(model):
    x = torch.randint(0, 50, (2, 7))
    out = model(x)
    torch.testing.assert_close(out.last_hidden_state, model.encode(x))
    torch.testing.assert_close(out.pooled, torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0])))
    assert out.nsp_logits.shape == (2, 2)
    assert model.mlm_head.decoder.weight is model.token_embedding.weight  # tied, with its own bias
    assert model.mlm_head.decoder.bias.shape == (50,)


def test_segments_change_the_output_and_are_checked(model):
    x = torch.randint(0, 50, (1, 6))
    second = torch.tensor([[0, 0, 0, 1, 1, 1]])
    assert not torch.allclose(model(x).last_hidden_state, model(x, token_type_ids=second).last_hidden_state)
    with pytest.raises(TokenOutOfVocabError, match="token id 2 is outside the vocabulary \\[0, 2\\)"):
        model(x, token_type_ids=second * 2)


def test_sequence_longer_than_the_position_limit_is_refused(model):
    with pytest.raises(SequenceTooLongError, match="17 tokens.*max_seq_len=16"):
        model(torch.ones(1, 17, dtype=torch.long))
