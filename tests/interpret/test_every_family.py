"""capture_attention on every family with attention, vision and fusion models included; views of each."""

import pytest
import torch
import torch.nn.functional as F

from formers.data.shapes_text import shapes_tokenizer
from formers.errors import ConfigError
from formers.interpret import capture_attention, head_importance
from formers.interpret.inputs import image_config
from formers.interpret.runs import build_view
from formers.models.heads import SequenceClassifierConfig
from formers.registry import build_model
from tests.interpret.cases import CONFIGS

INPUTS = {
    "vit": lambda ids, px: ((px,), {}),
    "clip": lambda ids, px: ((px, ids), {}),
    "visualbert": lambda ids, px: ((ids,), {"pixel_values": px}),
    "coattention": lambda ids, px: ((ids,), {"pixel_values": px}),
    "captioner": lambda ids, px: ((), {"pixel_values": px, "decoder_input_ids": ids}),
    "dalle": lambda ids, px: ((torch.randint(0, 96, (2, 6 + 4)),), {}),  # 6 text + 2 x 2 image tokens
}


@pytest.mark.parametrize("family", sorted(INPUTS))
def test_every_module_records_rows_of_one_and_outputs_stay_the_same(family):
    torch.manual_seed(0)
    model = build_model(CONFIGS[family]).eval()
    args, kw = INPUTS[family](torch.randint(0, 96, (2, 5)), torch.randn(2, 3, 16, 16))
    with torch.no_grad():
        reference = model(*args, **kw)
        with capture_attention(model) as maps:
            output = model(*args, **kw)
    first = next(v for v in vars(reference).values() if isinstance(v, torch.Tensor))
    again = next(v for v in vars(output).values() if isinstance(v, torch.Tensor))
    torch.testing.assert_close(again, first, atol=1e-5, rtol=1e-5)
    assert maps.run_order() and set(maps.run_order()) == set(maps.names())  # every module ran and recorded
    for name in maps.names():
        w = maps[name]
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert maps.update_norms(name).shape == w.shape[:3]


def test_views_route_patches_and_measure_modalities():
    tok = shapes_tokenizer()
    torch.manual_seed(0)
    px = torch.randn(1, 3, 16, 16)
    caption = build_view(build_model(CONFIGS["captioner"]), tok, text="a red circle", pixel_values=px)
    assert caption.grid == (4, 4) and caption.streams["image"].labels[0] == "[CLS]"
    cross = [layer for layer in caption.layers if layer.kind == "cross"]
    assert [tuple(layer.weights.shape) for layer in cross] == [(4, 4, 17)] * 2  # [BOS] + 3 words over 17 tokens
    assert caption.layers[0].name.startswith("image_tower.")  # run order: the tower before the decoder
    assert [row.measure for row in caption.modality] == ["update norm"] * 2
    share = caption.modality[0].share
    assert share.shape == (1, 4) and ((share > 0) & (share < 1)).all()

    joint = build_view(build_model(CONFIGS["visualbert"]), tok, text="a red circle", pixel_values=px)
    stream = joint.streams["joint"]
    assert stream.modality == ["text"] * 3 + ["image"] * 17 and stream.patch[4:] == list(range(16))
    row = joint.modality[0]
    layer = next(layer for layer in joint.layers if layer.name == row.name)
    torch.testing.assert_close(row.share, layer.weights[:, :, 3:].sum(-1))
    assert {layer.name for layer in joint.layers if layer.kind == "rollout"} == {"rollout: image", "rollout: joint"}


def test_a_dalle_view_splits_each_generation_step_between_caption_and_image():
    torch.manual_seed(0)
    view = build_view(build_model(CONFIGS["dalle"]), shapes_tokenizer(), text="a red circle")
    stream = view.streams["joint"]
    assert stream.modality == ["text"] * 6 + ["image"] * 3 and view.grid == (2, 2)  # the 4th cell is never read
    assert view.image.shape == (8, 8, 3) and 0 <= float(view.image.min()) <= float(view.image.max()) <= 1
    share = view.modality[0].share  # (H, 9)
    assert share.shape == (2, 9) and share[:, :6].abs().max() == 0  # causal: the caption cannot see the image
    assert ((share[:, 7:] > 0) & (share[:, 7:] < 1)).all()  # later steps read both the caption and the image


def test_a_task_head_is_drawn_as_its_trunk():
    vqa = SequenceClassifierConfig(trunk=CONFIGS["visualbert"].to_dict(), n_outputs=3, pooling="cls")
    assert image_config(vqa).family == "vit"  # the trunk's tower sizes the --image input
    view = build_view(build_model(vqa), shapes_tokenizer(), text="a red circle", pixel_values=torch.randn(1, 3, 16, 16))
    assert "joint" in view.streams and view.grid == (4, 4)
    assert [row.measure for row in view.modality] == ["attention mass"] * 2


def test_head_importance_in_a_view_is_the_loss_rise_of_what_the_model_read():
    torch.manual_seed(0)
    model, px = build_model(CONFIGS["captioner"]).eval(), torch.randn(1, 3, 16, 16)
    view = build_view(model, shapes_tokenizer(), text="a red circle", pixel_values=px, heads=True)
    words = shapes_tokenizer().encode("a red circle", add_special_tokens=False)
    ids = torch.tensor([[model.config.decoder_start_token_id, *words]])
    by_hand = head_importance(model, lambda m: F.cross_entropy(
        m(pixel_values=px, decoder_input_ids=ids).logits[0, :-1], ids[0, 1:]))
    attention = [layer for layer in view.layers if layer.kind != "rollout"]
    assert len(attention) == 6 and all(layer.importance is not None for layer in attention)
    for layer in attention:
        torch.testing.assert_close(layer.importance, by_hand[layer.name])
    assert any(layer.importance.abs().max() > 0 for layer in attention)
    with pytest.raises(ConfigError, match="head importance needs a loss"):
        build_view(build_model(CONFIGS["bert"]), shapes_tokenizer(), text="a red circle", heads=True)
