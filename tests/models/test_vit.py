"""ViT: what each build choice does, attention maps through the capture path, config errors."""

import pytest
import torch

from formers.errors import ConfigError, ImageInputError
from formers.interpret import capture_attention
from formers.models import ViT, ViTConfig
from formers.nn import SelfAttention
from formers.nn.kernels import SDPAKernel

TINY = dict(image_size=16, patch_size=4, n_channels=3, d_model=32, n_heads=4, n_layers=2)


def vit(**changes) -> ViT:
    torch.manual_seed(0)
    return ViT(ViTConfig(**{**TINY, **changes})).eval()


def test_cls_comes_first_and_is_what_the_head_reads():
    model, x = vit(n_classes=5), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model.head.weight.normal_()  # the head starts at zero
        out = model(x)
    assert out.last_hidden_state.shape == (2, 1 + 16, 32)
    assert torch.equal(out.pooled, out.last_hidden_state[:, 0])
    torch.testing.assert_close(out.logits, model.head(out.last_hidden_state[:, 0]))


def test_mean_pooling_has_no_cls_and_averages_the_patches():
    model = vit(pooling="mean", position="sincos2d")
    out = model(torch.randn(2, 3, 16, 16))
    assert out.last_hidden_state.shape == (2, 16, 32) and out.logits is None
    torch.testing.assert_close(out.pooled, out.last_hidden_state.mean(1))
    assert not any("positions" in name for name, _ in model.named_parameters())  # nothing to train


def test_tanh_pooler_is_berts_pooler_on_cls():
    model = vit(pooler="tanh")
    out = model(torch.randn(2, 3, 16, 16))
    expected = torch.tanh(model.pooler.dense(out.last_hidden_state[:, 0]))
    torch.testing.assert_close(out.pooled, expected)


def test_clip_layout_norms_the_embeddings_and_only_the_pooled_cls():
    model = vit(patch_bias=False, embedding_norm=True, final_norm="pooled", activation="quick_gelu")
    assert model.patches.projection.bias is None
    assert not any(name.startswith("stack.final_norm") for name, _ in model.named_parameters())
    with torch.no_grad():
        for p in (model.pooler.norm.weight, model.pooler.norm.bias, model.embedding_norm.weight):
            p.normal_()  # away from identity, so a missing or misplaced norm shows
        x = torch.randn(2, 3, 16, 16)
        out = model(x)
        embedded = model.cls(model.patches(x)) + model.positions(4, 4)
        expected_hidden = model.stack(model.embedding_norm(embedded))
    torch.testing.assert_close(out.last_hidden_state, expected_hidden)  # no norm after the blocks
    torch.testing.assert_close(out.pooled, model.pooler.norm(out.last_hidden_state[:, 0]))


def test_overlapping_patches_keep_the_grid_and_read_their_neighbours_pixels():
    plain, wide = vit(pooling="mean", position="sincos2d"), vit(pooling="mean", position="sincos2d", patch_overlap=2)
    assert wide.patches.projection.kernel_size == (8, 8) and wide.patches.projection.stride == (4, 4)
    x = torch.randn(1, 3, 16, 16)
    assert wide(x).last_hidden_state.shape == plain(x).last_hidden_state.shape == (1, 16, 32)
    # a pixel of patch (0, 0) two columns from its right edge: with overlap 2 it is also in patch (0, 1)
    # (kernel 8 at stride 4 with 2 of padding reads columns 2..9), without it only in patch (0, 0)
    poked = x.clone()
    poked[0, :, 0, 2] += 1.0
    for model, reached in ((plain, {0}), (wide, {0, 1})):
        moved = (model.patches(poked) - model.patches(x)).abs().sum(-1)[0]  # (16,) per patch
        assert set(moved.nonzero().flatten().tolist()) == reached


def test_a_conv_stem_halves_the_image_per_conv_and_gives_the_same_grid():
    plain, stem = vit(pooling="mean", position="sincos2d"), vit(pooling="mean", position="sincos2d", stem="conv")
    convs = [m for m in stem.patches.modules() if isinstance(m, torch.nn.Conv2d)]
    # patch 4 = two stride-2 3x3 convs (widths D/4, D/2 as in Xiao et al.'s 48..384 for D=768), then a 1x1 to D
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (8, (3, 3), (2, 2)), (16, (3, 3), (2, 2)), (32, (1, 1), (1, 1))]
    x = torch.randn(2, 3, 16, 16)
    assert stem(x).last_hidden_state.shape == plain(x).last_hidden_state.shape == (2, 16, 32)
    # its receptive field spans patches: a pixel of patch (0, 0) moves patch (0, 1)'s token too (eval BatchNorm)
    poked = x.clone()
    poked[0, :, 0, 3] += 1.0
    moved = (stem.patches(poked) - stem.patches(x)).abs().sum(-1)[0]  # (16,) per patch
    assert {0, 1} <= set(moved.nonzero().flatten().tolist())
    assert not moved[[5, 10, 15]].any()  # ... and not patches two cells away


def test_masked_patches_change_the_output_and_unmasked_images_do_not():
    model, x = vit(mask_token=True), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model.masking.token.normal_()
    none = torch.zeros(2, 16, dtype=torch.bool)
    some = none.clone()
    some[0, 3] = True
    plain, unmasked, masked = model(x), model(x, bool_masked_pos=none), model(x, bool_masked_pos=some)
    assert torch.equal(plain.last_hidden_state, unmasked.last_hidden_state)
    assert not torch.allclose(masked.last_hidden_state[0], plain.last_hidden_state[0])
    torch.testing.assert_close(masked.last_hidden_state[1], plain.last_hidden_state[1])  # row 1 has no mask
    # a masked patch's content is gone: changing its pixels changes nothing
    y = x.clone()
    y[0, :, 0:4, 12:16] += 5.0  # patch 3 is row 0, column 3
    torch.testing.assert_close(model(y, bool_masked_pos=some).last_hidden_state, masked.last_hidden_state)


def test_other_sizes_need_interpolation_and_then_work_for_both_position_kinds():
    for position in ("learned", "sincos2d"):
        model = vit(position=position)
        with pytest.raises(ImageInputError, match="24x20 pixels does not match the model's image_size=16"):
            model(torch.randn(1, 3, 24, 20))
        out = model(torch.randn(1, 3, 24, 20), interpolate_pos_encoding=True)
        assert out.last_hidden_state.shape == (1, 1 + 6 * 5, 32) and torch.isfinite(out.last_hidden_state).all()


def test_attention_maps_come_through_the_capture_path():
    model, x = vit(), torch.randn(2, 3, 16, 16)
    reference = model(x).last_hidden_state
    with capture_attention(model) as maps:
        hidden = model(x).last_hidden_state
    # the explicit softmax against SDPA: fp32 sums in another order, ~1e-6 relative
    torch.testing.assert_close(hidden, reference, rtol=1e-5, atol=1e-5)
    weights = maps.stacked()
    assert weights.shape == (2, 2, 4, 17, 17)  # (L, B, H, 1 + N, 1 + N)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 4, 17))
    assert all(isinstance(m.kernel, SDPAKernel) for m in model.modules() if isinstance(m, SelfAttention))


@pytest.mark.parametrize("changes, message", [
    (dict(patch_size=5), r"ViTConfig.patch_size=5 is not allowed; expected a divisor of image_size=16"),
    (dict(pooling="mean", pooler="tanh"), "ViTConfig.pooler='tanh'.*reads the \\[CLS\\] token"),
    (dict(position="sincos2d", d_model=30, n_heads=3), "ViTConfig.d_model=30.*multiple of 4"),
    (dict(n_classes=-1), "ViTConfig.n_classes=-1"),
    (dict(patch_overlap=4), r"ViTConfig.patch_overlap=4.*\[0, patch_size=4\)"),
    (dict(stem="conv", image_size=12, patch_size=6), r"ViTConfig.patch_size=6.*power of two"),
    (dict(stem="conv", patch_overlap=1), r"ViTConfig.stem='conv'.*'patchify' when patch_overlap"),
    (dict(stem="conv", patch_size=8, d_model=30, n_heads=3), r"ViTConfig.d_model=30.*multiple of 4 with stem"),
    (dict(final_norm="pooled", pooler="tanh"), "ViTConfig.final_norm='pooled'.*pooler='none'"),
    (dict(position="rotary"), "ViTConfig.position='rotary' is not allowed; expected one of 'learned', 'sincos2d'"),
])
def test_bad_configs_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        ViTConfig(**{**TINY, **changes})
