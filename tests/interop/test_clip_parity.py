"""CLIP parity with Hugging Face `transformers`, both directions, on random-init reference models.

HF -> formers: a CLIPModel save_pretrained folder loads with `formers.load` as a CLIP (ViT image
tower in CLIP's layout, causal GPT text tower). formers -> HF: `save_hf` writes a folder
`CLIPModel.from_pretrained` loads with no missing, unexpected or mismatched keys. Image and text
embeddings, the towers' hidden states and pooled outputs, and logits_per_image agree, with padded
texts, for both of transformers' pooling rules, and with interpolated positions at other sizes.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
import transformers as tf

from formers.cli import main
from formers.errors import ConfigError
from formers.interop import save_hf
from formers.models import CLIP
from tests.interop.references import CLIP_BUILDERS, V, reference, round_trip
from tests.interop.references import assert_close as assert_all_close
from tests.models.clip_cases import CASES, cnn_config, image_config, text_config

# logits are cosines times the reference's random scale exp(N(0, 0.3)) ~ 1: their largest is ~0.3, not ~1
assert_close = functools.partial(assert_all_close, least=0.1)
SIZES = [(16, 16), (24, 24), (20, 28)]  # the training size, then interpolated positions: bigger, not square


@pytest.fixture(scope="module", params=list(CLIP_BUILDERS))
def pair(request, tmp_path_factory):
    """(name, reference, ours loaded from the reference's folder, the reference reloaded from our export)."""
    name = request.param
    return (name, *round_trip(name, tmp_path_factory.mktemp(name)))


def texts(eos: int, top: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows right-padded to lengths 9, 6, 3; each ends with `eos`, word ids drawn from [6, top)."""
    g = torch.Generator().manual_seed(2)
    mask = (torch.arange(9)[None] < torch.tensor([9, 6, 3])[:, None]).long()
    ids = torch.randint(6, top, (3, 9), generator=g) * mask
    ids[torch.arange(3), mask.sum(1) - 1] = eos
    return ids, mask


def inputs(model_name: str, channels: int, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    # "clip" pools at the first id 5; "clip-argmax-gelu" at the highest id, so its rows end with V - 1
    ids, mask = texts(5, V) if model_name == "clip" else texts(V - 1, V - 1)
    pixels = torch.randn(4, channels, *size, generator=torch.Generator().manual_seed(3))
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}


def hf_outputs(model: tf.CLIPModel, x: dict, **kw) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(**x, **kw)
        vision = model.vision_model(x["pixel_values"], **kw)  # CLIPModel's own output swaps in the projected pool
    real = x["attention_mask"].bool()
    return {"logits_per_image": out.logits_per_image, "image_embeds": out.image_embeds,
            "text_embeds": out.text_embeds, "image_hidden": vision.last_hidden_state,
            "image_pooled": vision.pooler_output, "text_hidden": out.text_model_output.last_hidden_state[real]}


def our_outputs(model: CLIP, x: dict, **kw) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(x["pixel_values"], x["input_ids"], x["attention_mask"], **kw)
        vision = model.image_tower(x["pixel_values"], **kw)
        text = model.text_tower.encode(x["input_ids"], x["attention_mask"])
    return {"logits_per_image": out.logits_per_image, "image_embeds": out.image_embeds,
            "text_embeds": out.text_embeds, "image_hidden": vision.last_hidden_state, "image_pooled": vision.pooled,
            "text_hidden": text[x["attention_mask"].bool()]}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_outputs_match_in_both_directions(pair, size):
    name, ref, ours, back = pair
    kw = {"interpolate_pos_encoding": True} if size != (16, 16) else {}
    x = inputs(name, ours.config.image.n_channels, size)
    expected = hf_outputs(ref, x, **kw)
    assert_close(our_outputs(ours, x, **kw), expected, f"{name} {size}: HF -> formers")
    assert_close(hf_outputs(back, x, **kw), our_outputs(ours, x, **kw), f"{name} {size}: formers -> HF")


def test_the_loaded_configs_say_what_each_folder_holds(pair):
    name, ref, ours, _ = pair
    c = ours.config
    assert (c.text_pooling, c.eos_token_id) == {"clip": ("eos", 5), "clip-argmax-gelu": ("argmax", None)}[name]
    assert (c.image.patch_bias, c.image.embedding_norm, c.image.final_norm) == (False, True, "pooled")
    assert c.text.causal and c.embed_dim == ref.config.projection_dim
    assert ours.logit_scale.log_scale.item() == pytest.approx(ref.logit_scale.item())


def test_a_formers_built_clip_exports_and_matches(tmp_path):
    torch.manual_seed(0)
    image = image_config(patch_bias=False, embedding_norm=True, final_norm="pooled", activation="quick_gelu")
    ours = CLIP(CASES[0].config.replace(image=image, text_pooling="eos", eos_token_id=3)).eval()
    with torch.no_grad():  # norms away from identity, so a misplaced one shows
        for name, p in ours.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.3)
    save_hf(ours, tmp_path)
    hf = tf.CLIPModel.from_pretrained(tmp_path).eval()
    ids, mask = texts(3, 50)
    ids[0, 2] = 3  # a second end-of-text token: both sides read the first
    x = {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.randn(2, 3, 16, 16)}
    assert_close(hf_outputs(hf, x), our_outputs(ours, x), "formers -> HF")


def test_convert_both_ways_from_the_command_line(tmp_path):
    ref = reference("clip")
    ref.save_pretrained(tmp_path / "hf")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "ours")]) == 0
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["family"] == "clip"
    assert main(["convert", str(tmp_path / "ours"), str(tmp_path / "back")]) == 0
    back = tf.CLIPModel.from_pretrained(tmp_path / "back").eval()
    x = inputs("clip", 3, (16, 16))
    assert_close(hf_outputs(back, x), hf_outputs(ref, x), "convert round trip")


def test_models_hugging_face_cannot_express_are_refused_before_writing(tmp_path):
    base = CASES[0].config  # a plain ViT (final norm on every token) and last-token pooling
    with pytest.raises(ConfigError, match=r"CLIPConfig.text_pooling='last' \(needs \('eos', 'argmax'\)\)"):
        save_hf(CLIP(base), tmp_path)
    with pytest.raises(ConfigError, match=r"ViTConfig.patch_bias=True \(needs False\).*final_norm='tokens'"):
        save_hf(CLIP(base.replace(text_pooling="argmax")), tmp_path)
    with pytest.raises(ConfigError, match=r"CNNConfig.family='cnn' \(needs 'vit'\)"):
        save_hf(CLIP(base.replace(text_pooling="argmax", image=cnn_config())), tmp_path)
    clip_image = image_config(patch_bias=False, embedding_norm=True, final_norm="pooled")
    with pytest.raises(ConfigError, match=r"BertConfig.family='bert' \(needs 'gpt'\)"):
        save_hf(CLIP(CASES[2].config.replace(image=clip_image, text_pooling="argmax")), tmp_path)
    with pytest.raises(ConfigError, match=r"GPTConfig.causal=False \(needs True\)"):
        save_hf(CLIP(base.replace(text_pooling="argmax", image=clip_image, text=text_config(causal=False))),
                tmp_path)
    with pytest.raises(ConfigError, match="eos_token_id=2 with text_pooling='eos'"):
        save_hf(CLIP(base.replace(text_pooling="eos", eos_token_id=2, image=clip_image)), tmp_path)
    assert not any(tmp_path.iterdir())
