import torch

from formers.nn import causal_mask, combine, padding_mask, prefix_lm_mask, sliding_window_mask


def test_padding_mask_blocks_padded_keys_for_every_query():
    m = padding_mask(torch.tensor([[1, 1, 0]]))
    assert m.shape == (1, 1, 1, 3) and m[0, 0, 0].tolist() == [True, True, False]


def test_prefix_lm_mask_is_bidirectional_in_the_prefix_and_causal_after():
    m = prefix_lm_mask(torch.tensor([2, 0]), 4)
    assert m.shape == (2, 1, 4, 4)
    assert m[0, 0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert torch.equal(m[1, 0], causal_mask(4, 4))


def test_sliding_window_and_combine():
    w = sliding_window_mask(4, 4, 2, causal=True)
    assert w.int().tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    both = combine(w, None, padding_mask(torch.tensor([[0, 1, 1, 1]])))
    assert both[0, 0, 1].int().tolist() == [0, 1, 0, 0]
    assert combine(None, None) is None
