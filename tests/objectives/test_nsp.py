"""Next-sentence pairs: layout, segment ids, 50/50 true/random B, and the combined BERT loss."""

import math

import pytest
import torch

from formers.errors import DataError
from formers.objectives import BertPretraining, next_sentence_loss, next_sentence_pairs
from formers.objectives.nsp import IS_NEXT, IS_RANDOM

PAD, CLS, SEP = 0, 1, 2
# Document d holds tokens 1000*(d+1) + position, so a token says where it came from.
DOCS = [torch.arange(n) + 1000 * (d + 1) for d, n in enumerate([40, 200, 12, 90, 7, 300])]


def pairs(seed=0, batch_size=400, max_len=48):
    return next_sentence_pairs(DOCS, batch_size=batch_size, max_len=max_len, cls_id=CLS, sep_id=SEP, pad_id=PAD,
                               generator=torch.Generator().manual_seed(seed))


def test_layout_and_segment_ids():
    out = pairs()
    ids, seg, att = out["input_ids"], out["token_type_ids"], out["attention_mask"]
    assert ids.shape == seg.shape == att.shape == (400, 48)
    for row in range(ids.shape[0]):
        seps = (ids[row] == SEP).nonzero().squeeze(1).tolist()
        assert ids[row, 0] == CLS and len(seps) == 2
        first, second = seps
        n = second + 1
        assert bool((seg[row, : first + 1] == 0).all()) and bool((seg[row, first + 1: n] == 1).all())
        assert bool((ids[row, n:] == PAD).all()) and bool((seg[row, n:] == 0).all())
        assert att[row].tolist() == [1] * n + [0] * (48 - n)
        assert first >= 1 + 4 and second - first - 1 >= 1  # A has >= min_segment tokens, B at least one


def test_half_true_next_half_random():
    out = pairs()
    ids, labels = out["input_ids"], out["next_sentence_label"]
    assert abs(labels.float().mean().item() - 0.5) < 0.06
    for row in range(ids.shape[0]):
        first, second = (ids[row] == SEP).nonzero().squeeze(1).tolist()
        a, b = ids[row, 1:first], ids[row, first + 1: second]
        assert bool((a.diff() == 1).all()) and bool((b.diff() == 1).all())  # contiguous pieces of documents
        same_doc_continues = b[0] // 1000 == a[-1] // 1000 and b[0] == a[-1] + 1
        if labels[row] == IS_NEXT:
            assert same_doc_continues
        else:
            assert b[0] // 1000 != a[-1] // 1000  # from another document
    assert not bool(((ids >= 5000) & (ids < 6000)).any())  # the 7-token document is too short to be used


def test_seeded():
    assert torch.equal(pairs(3)["input_ids"], pairs(3)["input_ids"])
    assert not torch.equal(pairs(3)["input_ids"], pairs(4)["input_ids"])


def test_too_little_data_is_refused():
    with pytest.raises(DataError, match="max_len=8"):
        pairs(max_len=8)
    with pytest.raises(DataError, match="two documents"):
        next_sentence_pairs(DOCS[:1], batch_size=1, max_len=48, cls_id=CLS, sep_id=SEP, pad_id=PAD,
                            generator=torch.Generator())


def test_losses_by_hand():
    nsp_logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([IS_NEXT, IS_NEXT])
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))) / 2
    out = next_sentence_loss(nsp_logits, labels)
    # fp32 against the exact value: a few roundings of 6e-8 relative each; 1e-6 relative allows ~16
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6) and out["accuracy"].item() == 0.5

    mlm_logits = torch.zeros(2, 3, 5)  # uniform: MLM loss is log 5 wherever a label counts
    mlm_labels = torch.tensor([[-100, 3, -100], [1, -100, -100]])

    class Fake(torch.nn.Module):
        def forward(self, ids, attention_mask=None, token_type_ids=None):
            return type("Out", (), {"logits": mlm_logits, "nsp_logits": nsp_logits})

    batch = {"input_ids": mlm_labels, "labels": mlm_labels, "next_sentence_label": labels}
    total = BertPretraining()(Fake(), batch)
    assert total["loss"].item() == pytest.approx(math.log(5) + expected, rel=1e-6)
    assert total["nsp_loss"].item() == pytest.approx(expected, rel=1e-6) and total["nsp_accuracy"].item() == 0.5
    assert IS_RANDOM == 1  # Hugging Face's next_sentence_label convention
