"""Symmetric InfoNCE: a hand-computed case, false negatives masked exactly, finite gradients, the clamp."""

import math

import pytest
import torch
from torch.nn import functional as F

from formers.errors import DataError
from formers.nn.logit_scale import LogitScale
from formers.objectives.contrastive import info_nce, matches_from_ids


def lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


def test_two_pairs_by_hand():
    a, b, c, d = 3.0, 1.0, -0.5, 2.0  # logits_per_image [[a, b], [c, d]]: image i's own text is column i
    out = info_nce(torch.tensor([[a, b], [c, d]]))
    image_to_text = ((lse(a, b) - a) + (lse(c, d) - d)) / 2  # rows
    text_to_image = ((lse(a, c) - a) + (lse(b, d) - d)) / 2  # columns
    # fp32 log-sum-exp of two terms against float64: ~1e-7 relative
    assert out["loss"].item() == pytest.approx((image_to_text + text_to_image) / 2, rel=1e-6)
    assert out["i2t_accuracy"].item() == 1.0 and out["t2i_accuracy"].item() == 1.0


def test_false_negatives_leave_the_denominator_exactly():
    s = torch.tensor([[2.0, 1.5, 0.0], [1.0, 3.0, -1.0], [0.5, 0.2, 1.0]])
    # pairs 0 and 1 share a group: s[0, 1] leaves row 0 and column 1, s[1, 0] leaves row 1 and column 0
    matches = matches_from_ids(torch.tensor([7, 7, 9]))
    rows = [lse(2.0, 0.0) - 2.0, lse(3.0, -1.0) - 3.0, lse(0.5, 0.2, 1.0) - 1.0]
    cols = [lse(2.0, 0.5) - 2.0, lse(3.0, 0.2) - 3.0, lse(0.0, -1.0, 1.0) - 1.0]
    expected = (sum(rows) / 3 + sum(cols) / 3) / 2
    assert info_nce(s, matches)["loss"].item() == pytest.approx(expected, rel=1e-6)
    # with no shared id the mask changes nothing: plain CLIP
    plain = (F.cross_entropy(s, torch.arange(3)) + F.cross_entropy(s.T, torch.arange(3))) / 2
    distinct = matches_from_ids(torch.tensor([0, 1, 2]))
    assert info_nce(s, distinct)["loss"].item() == pytest.approx(plain.item(), rel=1e-6)
    assert info_nce(s)["loss"].item() == pytest.approx(plain.item(), rel=1e-6)


def test_duplicate_pairs_cost_nothing_once_masked():
    # rows 0 and 1 are the same image with the same caption; row 2 is different: perfect features
    image = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), dim=-1)
    logits = 100.0 * image @ image.T  # (3, 3)
    masked = info_nce(logits, matches_from_ids(torch.tensor([0, 0, 1])))
    assert masked["loss"].item() < 1e-6
    # counted as negatives, the duplicates cost log 2 in each of their rows and columns: (2/3) log 2
    assert info_nce(logits)["loss"].item() == pytest.approx(2 / 3 * math.log(2), rel=1e-5)
    # and accuracy counts a duplicate as a right answer (argmax may land on either)
    assert masked["i2t_accuracy"].item() == 1.0 and masked["t2i_accuracy"].item() == 1.0


def test_image_and_group_ids_combine():
    image_ids, group_ids = torch.tensor([0, 0, 1, 2]), torch.tensor([5, 5, 6, 6])
    m = matches_from_ids(image_ids, group_ids, None)
    assert m.tolist() == [[True, True, False, False], [True, True, False, False],
                          [False, False, True, True], [False, False, True, True]]
    assert matches_from_ids(None) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradient_is_finite_with_masked_entries(dtype):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(6, 6, generator=g) * 10).to(dtype).requires_grad_()
    matches = matches_from_ids(torch.tensor([0, 0, 0, 1, 1, 2]))
    out = info_nce(logits, matches)
    out["loss"].backward()
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    assert torch.isfinite(logits.grad).all()
    off_diagonal_matches = matches & ~torch.eye(6, dtype=torch.bool)
    assert (logits.grad[off_diagonal_matches] == 0).all()  # a masked entry gets no push either way
    assert (logits.grad[~matches] != 0).all()


def test_fewer_texts_than_images_and_bad_matches_are_refused():
    with pytest.raises(DataError, match=r"\(B, B \+ N\).*\(3, 2\)"):
        info_nce(torch.zeros(3, 2))
    with pytest.raises(DataError, match=r"do not fit logits \(2, 2\)"):
        info_nce(torch.zeros(2, 2), torch.ones(3, 3, dtype=torch.bool))


def test_negative_texts_join_only_the_image_to_text_softmax():
    # 2 pairs + 2 negative texts (columns 2, 3); negative 3 is true of image 0, so row 0 masks it
    s = torch.tensor([[2.0, 0.5, 1.5, 2.5], [0.0, 1.0, 3.0, -1.0]])
    fooled = torch.tensor([[False, True], [False, False]])
    matches = torch.cat([torch.eye(2, dtype=torch.bool), fooled], dim=1)
    rows = [lse(2.0, 0.5, 1.5) - 2.0, lse(0.0, 1.0, 3.0, -1.0) - 1.0]
    cols = [lse(2.0, 0.0) - 2.0, lse(0.5, 1.0) - 1.0]  # negatives have no image: no column terms
    out = info_nce(s, matches)
    assert out["loss"].item() == pytest.approx((sum(rows) / 2 + sum(cols) / 2) / 2, rel=1e-6)
    # image 1 prefers its hard negative: wrong; image 0's argmax (2.5) is the negative true of it: right
    assert out["i2t_accuracy"].item() == 0.5 and out["t2i_accuracy"].item() == 1.0
    # unmasked, negative 3 is just another wrong text in row 0
    rows[0] = lse(2.0, 0.5, 1.5, 2.5) - 2.0
    unmasked = torch.eye(2, 4, dtype=torch.bool)
    assert info_nce(s, unmasked)["loss"].item() == pytest.approx((sum(rows) / 2 + sum(cols) / 2) / 2, rel=1e-6)


def test_temperature_starts_at_0_07_and_is_clamped_at_100():
    scale = LogitScale()
    assert scale.log_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert scale.scale().item() == pytest.approx(1 / 0.07, rel=1e-6)
    sim = torch.tensor([[0.5, -0.25]])
    with torch.no_grad():
        scale.log_scale.fill_(10.0)  # exp(10) ~ 22026
    out = scale(sim)
    assert torch.allclose(out, sim * 100.0)
    out.sum().backward()
    assert scale.log_scale.grad.item() == 0.0  # past the clip, the loss no longer moves the scale
    with pytest.raises(ValueError, match="must lie in"):
        LogitScale(init=200.0)


def test_a_one_way_matches_matrix_masks_each_direction_by_its_own_side():
    # caption 1 ("a red circle") is also true of image 0 (a red circle and a blue square), not the reverse
    matches = torch.tensor([[True, True], [False, True]])
    s = torch.tensor([[2.0, 1.0], [0.5, 3.0]])
    out = info_nce(s, matches_from_ids(matches, torch.tensor([0, 1])))
    rows = [2.0 - 2.0, lse(0.5, 3.0) - 3.0]  # image 0 loses text 1 from its denominator
    cols = [lse(2.0, 0.5) - 2.0, 0.0]  # text 1 loses image 0 from its denominator
    assert out["loss"].item() == pytest.approx((sum(rows) / 2 + sum(cols) / 2) / 2, rel=1e-6)
