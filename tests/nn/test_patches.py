"""Patch embedding, 2-D positions, [CLS] and mask tokens, pixel checks."""

import math

import pytest
import torch

from formers.errors import ImageInputError
from formers.nn.patches import (
    ClassToken,
    LearnedPatchPositions,
    MaskToken,
    NoMaskToken,
    PatchEmbedding,
    SinCos2dPositions,
    check_pixels,
    sincos_2d,
)


def test_patch_embedding_is_one_linear_map_per_patch_in_row_major_order():
    embed = PatchEmbedding(n_channels=3, d_model=8, patch_size=4)
    x = torch.randn(2, 3, 8, 12)
    out = embed(x)
    assert out.shape == (2, 6, 8)  # a 2 x 3 grid
    weight = embed.projection.weight.reshape(8, -1)  # (D, C*p*p)
    for n, (r, c) in enumerate((r, c) for r in range(2) for c in range(3)):
        patch = x[:, :, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].reshape(2, -1)  # (B, C*p*p)
        # fp32 sums of 48 products in another order: ~1e-6 relative
        torch.testing.assert_close(out[:, n], patch @ weight.T + embed.projection.bias, rtol=1e-5, atol=1e-5)


def test_sincos_2d_codes_the_row_in_one_half_and_the_column_in_the_other():
    table = sincos_2d(3, 4, 16)  # (12, 16), row-major
    assert table.shape == (12, 16)
    rows, cols = table[:, :8], table[:, 8:]
    assert torch.equal(rows[0], rows[3]) and torch.equal(rows[4], rows[7])  # same row, same first half
    assert torch.equal(cols[0], cols[4]) and torch.equal(cols[1], cols[9])  # same column, same second half
    assert not torch.equal(rows[0], rows[4]) and not torch.equal(cols[0], cols[1])
    # the 1-D sinusoid of Vaswani et al. on 8 channels: sin(pos / 10000^(2i/8)) at channel 2i
    assert table[4 * 2 + 1, 2].item() == pytest.approx(math.sin(2 / 10000 ** (2 / 8)), abs=1e-6)  # row 2
    assert table[4 * 2 + 1, 8 + 2].item() == pytest.approx(math.sin(1 / 10000 ** (2 / 8)), abs=1e-6)  # column 1


def test_sincos_positions_give_a_cls_token_the_zero_vector():
    out = SinCos2dPositions(16, n_prefix=1)(2, 2)
    assert out.shape == (1, 5, 16) and out[0, 0].abs().max() == 0
    torch.testing.assert_close(out[0, 1:], sincos_2d(2, 2, 16))


def test_learned_positions_keep_their_table_and_resize_it_to_another_grid():
    positions = LearnedPatchPositions(grid=4, d_model=6, n_prefix=1)
    assert positions(4, 4) is positions.table
    with torch.no_grad():  # constant per channel: bicubic resizing must keep the constants
        positions.table[:, 1:] = torch.arange(6.0)
    resized = positions(6, 3)
    assert resized.shape == (1, 1 + 18, 6)
    torch.testing.assert_close(resized[0, 0], positions.table[0, 0])  # [CLS] is never resized
    torch.testing.assert_close(resized[0, 1:], torch.arange(6.0).expand(18, -1), rtol=1e-5, atol=1e-5)


def test_mask_token_replaces_exactly_the_masked_patches():
    mask_token = MaskToken(4)
    with torch.no_grad():
        mask_token.token.fill_(7.0)
    x = torch.randn(2, 5, 4)
    masked = torch.tensor([[True, False, False, True, False], [False] * 5])
    out = mask_token(x, masked)
    assert (out[masked] == 7.0).all() and torch.equal(out[~masked], x[~masked])
    assert mask_token(x, None) is x
    with pytest.raises(ImageInputError, match=r"shape \(2, 4\) but the images have 5 patches"):
        mask_token(x, masked[:, :4])
    with pytest.raises(ImageInputError, match="no mask token.*mask_token=True"):
        NoMaskToken()(x, masked)


def test_class_token_goes_first():
    cls = ClassToken(4)
    out = cls(torch.zeros(3, 5, 4))
    assert out.shape == (3, 6, 4) and torch.equal(out[:, 0], cls.token[0].expand(3, -1))


@pytest.mark.parametrize("bad, message", [
    (torch.randn(3, 8, 8), r"\(B, C, H, W\); got shape \(3, 8, 8\) \(one image: add a batch dimension"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "float tensor.*got torch.uint8"),
    (torch.randn(1, 1, 8, 8), "1 channels but the model reads 3"),
    (torch.randn(1, 3, 10, 8), r"10x8 pixels does not split into 4x4 patches.*\(e.g. 8x8\)"),
    (torch.randn(1, 3, 12, 12), r"12x12 pixels does not match the model's image_size=8.*interpolate_pos_encoding"),
])
def test_bad_pixels_are_refused_with_what_was_wrong(bad, message):
    with pytest.raises(ImageInputError, match=message):
        check_pixels(bad, 3, multiple_of=4, size=8)
    assert check_pixels(torch.randn(1, 3, 8, 12), 3, multiple_of=4) == (8, 12)
