"""The image encoders' contract: shapes, save/load round trip, bf16 forward, typed errors for bad pixels,
batch independence, and (ViT) other image sizes through position interpolation."""

import pytest
import torch

import formers
from formers.errors import ImageInputError
from formers.interpret import capture_attention
from formers.models import VisionOutput, ViTConfig
from formers.registry import build_model
from tests.models.contract import IMAGE_CASES

VITS = [c for c in IMAGE_CASES if isinstance(c.config, ViTConfig)]


def make(case):
    torch.manual_seed(0)
    model = build_model(case.config).eval()
    with torch.no_grad():  # zero-initialised heads and norms would hide mistakes behind constant outputs
        for name, p in model.named_parameters():
            if name.startswith("head.") or name.endswith("norm2.weight"):
                p.normal_(0.0, 0.5)
    return model


def pixels(case, b=2, size=None):
    g = torch.Generator().manual_seed(1)
    size = size or case.size
    return torch.randn(b, case.config.n_channels, size, size, generator=g)


def outputs(out: VisionOutput) -> dict[str, torch.Tensor]:
    got = {"last_hidden_state": out.last_hidden_state, "pooled": out.pooled}
    return got if out.logits is None else {**got, "logits": out.logits}


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_shapes(case):
    out = make(case)(pixels(case))
    c = case.config
    assert out.last_hidden_state.shape[0] == 2 and out.last_hidden_state.shape[2] == c.d_model
    assert out.pooled.shape == (2, c.d_model)
    assert (out.logits is None) == (c.n_classes == 0)
    if c.n_classes:
        assert out.logits.shape == (2, c.n_classes)
    if isinstance(c, ViTConfig):
        assert out.last_hidden_state.shape[1] == c.grid**2 + (c.pooling == "cls")


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_save_load_round_trip(case, tmp_path):
    model = make(case)
    formers.save_model(model, tmp_path)
    again = formers.load(tmp_path)
    assert type(again) is type(model) and again.config == model.config
    x = pixels(case)
    for key, value in outputs(model(x)).items():
        assert torch.equal(value, outputs(again(x))[key]), key


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_bf16_autocast_forward_is_close(case):
    model, x = make(case), pixels(case)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = outputs(model(x))
    ref = outputs(model(x))
    if "logits" in low:
        assert low["logits"].dtype == torch.bfloat16  # the head's matmul ran in bf16
    for key in ref:
        assert torch.isfinite(low[key]).all()
        # bf16 keeps 8 mantissa bits (~0.4% per rounding); over a few layers the error stays well under
        # 10% of the output's scale, while a wrong path (a skipped layer, a missing norm) is off by ~100%
        assert (low[key].float() - ref[key]).abs().max() < 0.1 * ref[key].abs().max(), key


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_an_image_gives_the_same_output_alone_and_in_a_batch(case):
    model, x = make(case), pixels(case, b=3)
    batch, again, alone = outputs(model(x)), outputs(model(x)), outputs(model(x[1:2]))
    for key in batch:
        assert torch.equal(batch[key], again[key]), key  # no randomness in eval mode
        # another batch size may pick another fp32 summation order: ~1e-6 relative
        torch.testing.assert_close(alone[key], batch[key][1:2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", IMAGE_CASES, ids=lambda c: c.name)
def test_bad_pixels_are_refused(case):
    model, x = make(case), pixels(case)
    n = case.config.n_channels
    with pytest.raises(ImageInputError, match=r"must be \(B, C, H, W\); got shape"):
        model(x[0])
    with pytest.raises(ImageInputError, match=f"have {n + 1} channels but the model reads {n}"):
        model(torch.randn(2, n + 1, case.size, case.size))
    with pytest.raises(ImageInputError, match="float tensor.*torch.uint8"):
        model(torch.zeros(2, n, case.size, case.size, dtype=torch.uint8))


@pytest.mark.parametrize("case", VITS, ids=lambda c: c.name)
def test_vit_sizes_other_than_image_size_need_interpolation_and_then_stay_finite(case):
    model, p = make(case), case.config.patch_size
    bigger = pixels(case, size=case.size + 2 * p)
    with pytest.raises(ImageInputError, match=f"does not match the model's image_size={case.size}"):
        model(bigger)
    with pytest.raises(ImageInputError, match=f"does not split into {p}x{p} patches"):
        model(pixels(case, size=case.size + 1), interpolate_pos_encoding=True)
    out = model(bigger, interpolate_pos_encoding=True)
    grid = case.size // p + 2
    assert out.last_hidden_state.shape[1] == grid**2 + (case.config.pooling == "cls")
    for value in outputs(out).values():
        assert torch.isfinite(value).all()


@pytest.mark.parametrize("case", VITS, ids=lambda c: c.name)
def test_vit_attention_maps_are_captured(case):
    model, x = make(case), pixels(case)
    with capture_attention(model) as maps:
        model(x)
    n = case.config.grid**2 + (case.config.pooling == "cls")
    weights = maps.stacked()
    assert weights.shape == (case.config.n_layers, 2, case.config.n_heads, n, n)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
