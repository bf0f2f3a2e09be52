"""ViT parity with Hugging Face `transformers`, both directions, on random-init reference models.

HF -> formers: a ViTModel / ViTForImageClassification save_pretrained folder loads with `formers.load`.
formers -> HF: `save_hf` writes a folder `from_pretrained` loads with no missing, unexpected or
mismatched keys. Hidden states, pooled features and logits agree at the training size and, through
interpolated positions, at two other sizes (one not square), and with masked patches.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers as tf

import formers
from formers.cli import main
from formers.errors import CheckpointError, ConfigError
from formers.interop import save_hf
from formers.models import CNN, CNNConfig, ViT, ViTConfig
from tests.interop.references import VISION_BUILDERS, assert_close, reference, round_trip

BUILD_KWARGS = {"vit-bare-mask-gelu-new": dict(add_pooling_layer=False, use_mask_token=True)}
SIZES = [(16, 16), (24, 24), (20, 28)]  # the training size, then interpolated positions: bigger, not square


@pytest.fixture(scope="module", params=list(VISION_BUILDERS))
def pair(request, tmp_path_factory):
    """(name, reference, ours loaded from the reference's folder, the reference reloaded from our export)."""
    name = request.param
    return (name, *round_trip(name, tmp_path_factory.mktemp(name), **BUILD_KWARGS.get(name, {})))


def images(channels: int, size: tuple[int, int]) -> torch.Tensor:
    return torch.randn(3, channels, *size, generator=torch.Generator().manual_seed(2))


def outputs(model, hf: bool, x: torch.Tensor, **kw) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(x, **kw)
    if hf and isinstance(model, tf.ViTForImageClassification):
        return {"logits": out.logits}
    if hf:
        got = {"last_hidden_state": out.last_hidden_state}
        return got if out.pooler_output is None else {**got, "pooled": out.pooler_output}
    if out.logits is not None:
        return {"logits": out.logits}
    got = {"last_hidden_state": out.last_hidden_state}
    return got if model.config.pooler == "none" else {**got, "pooled": out.pooled}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_outputs_match_in_both_directions(pair, size):
    name, ref, ours, back = pair
    kw = {"interpolate_pos_encoding": True} if size != (16, 16) else {}
    x = images(ours.config.n_channels, size)
    expected = outputs(ref, True, x, **kw)
    assert_close(outputs(ours, False, x, **kw), expected, f"{name} {size}: HF -> formers")
    assert_close(outputs(back, True, x, **kw), outputs(ours, False, x, **kw), f"{name} {size}: formers -> HF")


def test_the_loaded_configs_say_what_each_folder_holds(pair):
    name, _, ours, _ = pair
    c = ours.config
    assert (c.pooler, c.mask_token, c.n_classes) == {
        "vit": ("tanh", False, 0), "vit-classifier": ("none", False, 5),
        "vit-bare-mask-gelu-new": ("none", True, 0)}[name]
    assert c.norm_eps == (1e-6 if name == "vit-bare-mask-gelu-new" else 1e-12)  # transformers' ViT default


def test_masked_patches_match(tmp_path):
    ref = reference("vit-bare-mask-gelu-new")
    ref.save_pretrained(tmp_path)
    ours = formers.load(tmp_path)
    x = images(1, (16, 16))
    masked = torch.rand(3, 16, generator=torch.Generator().manual_seed(3)) < 0.5
    assert_close(outputs(ours, False, x, bool_masked_pos=masked), outputs(ref, True, x, bool_masked_pos=masked),
                 "masked patches")
    assert not torch.allclose(outputs(ours, False, x)["last_hidden_state"],
                              outputs(ours, False, x, bool_masked_pos=masked)["last_hidden_state"])


def test_convert_both_ways_from_the_command_line(tmp_path):
    ref = reference("vit-classifier")
    ref.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["family"] == "vit"
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = tf.ViTForImageClassification.from_pretrained(tmp_path / "back").eval()
    x = images(3, (16, 16))
    assert_close(outputs(back, True, x), outputs(ref, True, x), "convert round trip")


def test_models_hugging_face_cannot_express_are_refused_before_writing(tmp_path):
    tiny = dict(image_size=16, patch_size=4, d_model=32, n_heads=4, n_layers=1)
    with pytest.raises(ConfigError, match=r"ViTConfig.position='sincos2d' \(needs 'learned'\), "
                                          r"ViTConfig.pooling='mean' \(needs 'cls'\)"):
        save_hf(ViT(ViTConfig(**tiny, position="sincos2d", pooling="mean")), tmp_path)
    with pytest.raises(ConfigError, match=r"ViTForImageClassification counterpart for ViTConfig.pooler='tanh'"):
        save_hf(ViT(ViTConfig(**tiny, pooler="tanh", n_classes=3)), tmp_path)
    with pytest.raises(ConfigError, match=r"ViTConfig.patch_overlap=2 \(needs 0\)"):
        save_hf(ViT(ViTConfig(**tiny, patch_overlap=2)), tmp_path)
    with pytest.raises(ConfigError, match="family 'cnn' has no Hugging Face counterpart"):
        save_hf(CNN(CNNConfig()), tmp_path)
    assert not any(tmp_path.iterdir())


def test_checkpoints_formers_cannot_read_are_refused(tmp_path):
    reference("vit").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "image_size": [16, 32]}))
    with pytest.raises(CheckpointError, match=r"image_size=\[16, 32\]: formers' ViT reads square images"):
        formers.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "qkv_bias": False}))
    with pytest.raises(CheckpointError, match="qkv_bias=false has no formers counterpart"):
        formers.load(tmp_path)
