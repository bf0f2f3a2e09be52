"""CLIP's contract: shapes, unit-norm embeddings, pooling choices, padding, save/load, bf16, typed errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

import formers
from formers.errors import ConfigError, DataError, ImageInputError, TokenOutOfVocabError
from formers.models import CLIP, CLIPConfig
from formers.models.clip import ArgmaxPool, EosPool, LastTokenPool, MaskPool
from formers.registry import build_model
from tests.models.clip_cases import CASES, image_config, pixels, text_batch, text_config


def make(config: CLIPConfig) -> CLIP:
    torch.manual_seed(0)
    return build_model(config).eval()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shapes_and_unit_norm_embeddings(case):
    model = make(case.config)
    ids, mask = text_batch(case.config, b=2)
    out = model(pixels(case.config, b=3), ids, mask)
    assert out.logits_per_image.shape == (3, 2) and out.logits_per_text.shape == (2, 3)
    assert out.image_embeds.shape == (3, case.config.embed_dim) and out.text_embeds.shape == (2, case.config.embed_dim)
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.text_embeds.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(out.logits_per_image, out.logit_scale * out.image_embeds @ out.text_embeds.T)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.T)
    assert out.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-6)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_padding_does_not_change_text_embeddings(case):
    model = make(case.config)
    ids, mask = text_batch(case.config, b=2)
    alone = model.encode_text(ids[:1, : int(mask[0].sum())])  # the first row, unpadded and without a mask
    padded = model.encode_text(ids, mask)[:1]
    # fp32 attention over 7 vs 9 keys, masked: the same sums in another order (~1e-7 relative)
    torch.testing.assert_close(padded, alone, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_save_load_round_trip(case, tmp_path):
    model = make(case.config)
    formers.save_model(model, tmp_path)
    again = formers.load(tmp_path)
    assert type(again) is CLIP and again.config == model.config
    ids, mask = text_batch(case.config)
    x = pixels(case.config)
    assert torch.equal(model(x, ids, mask).logits_per_image, again(x, ids, mask).logits_per_image)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bf16_autocast_forward_is_close(case):
    model = make(case.config)
    ids, mask = text_batch(case.config)
    x = pixels(case.config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, ids, mask)
    ref = model(x, ids, mask)
    assert low.logits_per_image.dtype == torch.float32  # similarities leave autocast (see CLIP.similarity)
    # bf16 towers: embeddings within ~1e-2 of fp32 (8-bit mantissa through a few layers)
    assert (low.image_embeds - ref.image_embeds).abs().max() < 3e-2
    assert (low.text_embeds - ref.text_embeds).abs().max() < 3e-2


def test_config_round_trips_through_plain_data_and_overrides():
    config = CASES[0].config
    data = config.to_dict()
    assert data["image"]["family"] == config.image.family and data["text"]["family"] == "gpt"
    assert CLIPConfig.from_dict(data) == config
    data["text"]["n_layers"] = 3
    assert CLIPConfig.from_dict(data).text.n_layers == 3


def test_bad_configs_are_refused_by_name():
    with pytest.raises(ConfigError, match=rf"CLIPConfig.text='{image_config().family}'.*family gpt or bert"):
        CLIPConfig(image=image_config(), text=image_config())
    with pytest.raises(ConfigError, match=r"CLIPConfig.eos_token_id=None.*text_pooling='eos'"):
        CLIPConfig(image=image_config(), text=text_config(), text_pooling="eos")
    with pytest.raises(ConfigError, match=r"text_pooling='cls'.*causal text tower"):
        CLIPConfig(image=image_config(), text=text_config(), text_pooling="cls")
    with pytest.raises(ConfigError, match=r"tie_weights=False"):
        CLIPConfig(image=image_config(), text=text_config(tie_weights=False))
    with pytest.raises(ConfigError, match=r"text.n_layerz|unknown field"):
        CLIPConfig.from_dict({"image": image_config().to_dict(), "text": {"family": "gpt", "n_layerz": 2}})


def test_typed_errors_for_bad_images():
    model = make(CASES[0].config)
    with pytest.raises(ImageInputError, match="channels"):
        model.encode_image(torch.randn(2, 1, 16, 16))
    with pytest.raises(ImageInputError, match="image_size=16"):
        model.encode_image(torch.randn(2, 3, 20, 20))


def test_typed_errors_for_bad_text():
    config = CASES[0].config
    model = make(config)
    ids, mask = text_batch(config)
    bad = ids.clone()
    bad[0, 1] = config.text.vocab_size
    with pytest.raises(TokenOutOfVocabError):
        model.encode_text(bad, mask)
    eos_model = make(dataclasses.replace(config, text_pooling="eos", eos_token_id=1))
    with pytest.raises(DataError, match=r"text rows \[0, 1\] hold no end-of-text token 1"):
        eos_model.encode_text(torch.full((2, 4), 5))


def test_pooling_modules_read_the_right_token():
    hidden = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)  # state = 5 * row + position
    ids = torch.tensor([[4, 9, 1, 0, 0], [7, 1, 3, 1, 2]])
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert LastTokenPool()(hidden, ids, right).flatten().tolist() == [2, 9]
    assert LastTokenPool()(hidden, ids, left).flatten().tolist() == [4, 9]
    assert LastTokenPool()(hidden, ids, None).flatten().tolist() == [4, 9]
    assert EosPool(1)(hidden, ids, right).flatten().tolist() == [2, 6]  # the first 1 of each row
    assert ArgmaxPool()(hidden, ids, right).flatten().tolist() == [1, 5]
    assert MaskPool("mean")(hidden, ids, right).flatten().tolist() == [1, 7]
    assert MaskPool("cls")(hidden, ids, right).flatten().tolist() == [0, 5]


def test_trains_one_step_with_finite_gradients_everywhere():
    from formers.objectives import Contrastive

    config = CASES[0].config
    model = make(config).train()
    ids, mask = text_batch(config, b=4)
    batch = {"pixel_values": pixels(config, b=4), "input_ids": ids, "attention_mask": mask,
             "group_ids": torch.tensor([0, 1, 1, 2])}
    metrics = Contrastive()(model, batch)
    metrics["loss"].backward()
    assert torch.isfinite(metrics["loss"]) and metrics["logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    unused = {"text_tower.lm_head.weight"}  # tied to the token embedding: the same tensor, which does get a grad
    for name, p in model.named_parameters():
        assert name in unused or (p.grad is not None and torch.isfinite(p.grad).all()), name
    assert model.logit_scale.log_scale.grad.abs() > 0
    # the loss is CLIP's on these logits with rows 1 and 2 masked for each other
    out = model(batch["pixel_values"], ids, mask)
    s = out.logits_per_image.detach()
    s[1, 2] = s[2, 1] = float("-inf")
    expected = (F.cross_entropy(s, torch.arange(4)) + F.cross_entropy(s.T, torch.arange(4))) / 2
    assert metrics["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
