"""The fusion models' contract (VisualBERT, co-attention, late fusion): shapes, the image matters, text and
visual padding are ignored, save/load round trip, bf16 forward, task heads on the trunk, typed errors."""

import pytest
import torch

import formers
from formers.errors import ImageInputError
from formers.models import LateFusionConfig, SequenceClassifier, with_head
from formers.registry import build_model
from tests.models.contract import CNN, FUSION_CASES, VIT


def make(case):
    torch.manual_seed(0)
    return build_model(case.config).eval()


def ids(case, b=2, t=7):
    return torch.randint(1, case.config.vocab_size, (b, t), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_shapes(case):
    out = make(case)(ids(case), **case.visual(2))
    c = case.config
    assert out.logits.shape == (2, 7, c.vocab_size)  # MLM logits over the text positions
    assert out.pooled.shape == (2, c.d_model)
    assert out.last_hidden_state.shape[0] == 2 and out.last_hidden_state.shape[2] == c.d_model


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_the_image_changes_the_text_states(case):
    model, x = make(case), ids(case)
    a = model(x, **case.visual(2, seed=1)).last_hidden_state[:, :7]
    b = model(x, **case.visual(2, seed=2)).last_hidden_state[:, :7]
    # fused: the text positions see the image. A model that ignored it would give the same numbers to the last
    # bit; at init a CNN's blocks are identities and the projection small, so the effect is ~1e-3, not O(1)
    assert (a - b).abs().max() > 1e-5 * a.abs().max()


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_text_padding_is_ignored(case):
    model, x, visual = make(case), ids(case, b=1, t=5), case.visual(1)
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    got = model(padded, mask, **visual)
    want = model(x, **visual)
    # fp32 sums over a different number of keys: ~1e-6 relative; 1e-5 leaves room
    torch.testing.assert_close(got.pooled, want.pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.logits[:, :5], want.logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", [c for c in FUSION_CASES if c.config.image is None], ids=lambda c: c.name)
def test_visual_padding_is_ignored(case):
    model, x = make(case), ids(case, b=1)
    visual = case.visual(1)["visual_embeds"]  # (1, 5, Dv)
    extra = torch.cat([visual, 100 * torch.randn(1, 2, visual.shape[-1])], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 2])
    got = model(x, visual_embeds=extra, visual_attention_mask=mask).pooled
    torch.testing.assert_close(got, model(x, visual_embeds=visual).pooled, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_save_load_round_trip(case, tmp_path):
    model = make(case)
    formers.save_model(model, tmp_path)
    again = formers.load(tmp_path)
    assert type(again) is type(model) and again.config == model.config
    x, visual = ids(case), case.visual(2)
    assert torch.equal(model(x, **visual).last_hidden_state, again(x, **visual).last_hidden_state)


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_bf16_autocast_forward_is_close(case):
    model, x, visual = make(case), ids(case), case.visual(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x, **visual).pooled.float()
    ref = model(x, **visual).pooled
    assert torch.isfinite(low).all()
    # bf16 keeps 8 mantissa bits (~0.4% per rounding); a few layers stay well under 10% of the scale
    assert (low - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_a_task_head_reads_the_fused_trunk(case, tmp_path):
    model = with_head(SequenceClassifier, make(case), n_outputs=3, dropout=0.0).eval()
    x, visual = ids(case), case.visual(2)
    logits = model(x, **visual).logits
    assert logits.shape == (2, 3)
    assert not torch.allclose(logits, model(x, **case.visual(2, seed=5)).logits)  # the head sees the image
    formers.save_model(model, tmp_path)
    assert torch.equal(formers.load(tmp_path)(x, **visual).logits, logits)


@pytest.mark.parametrize("case", FUSION_CASES, ids=lambda c: c.name)
def test_visual_inputs_are_checked(case):
    model, x = make(case), ids(case)
    with pytest.raises(ImageInputError, match="exactly one"):
        model(x)
    if case.config.image is None:
        with pytest.raises(ImageInputError, match="visual_embeds"):
            model(x, visual_embeds=torch.randn(2, 5, case.config.visual_dim + 1))
        with pytest.raises(ImageInputError, match="no image tower"):
            model(x, pixel_values=torch.randn(2, 3, 16, 16))
    else:
        with pytest.raises(ImageInputError, match="channels"):
            model(x, pixel_values=torch.randn(2, 1, case.size, case.size))


def test_late_fusion_shapes_save_load_and_image_use(tmp_path):
    config = LateFusionConfig(image={"family": "cnn", **CNN, "depths": [1, 1]},
                              text=dict(family="bert", vocab_size=61, d_model=32, n_heads=4, n_layers=1,
                                        max_seq_len=32, dropout=0.0), n_outputs=4, hidden=16, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config).eval()
    x = torch.randint(1, 61, (2, 7))
    pixels = torch.randn(2, 3, 12, 12)
    logits = model(x, pixel_values=pixels).logits
    assert logits.shape == (2, 4)
    assert not torch.allclose(logits, model(x, pixel_values=torch.randn(2, 3, 12, 12)).logits)
    formers.save_model(model, tmp_path)
    assert torch.equal(formers.load(tmp_path)(x, pixel_values=pixels).logits, logits)


def test_late_fusion_refuses_a_missing_tower():
    from formers.errors import ConfigError

    with pytest.raises(ConfigError, match="image"):
        LateFusionConfig(image=None, text=dict(family="bert"))
    with pytest.raises(ConfigError, match="text"):
        LateFusionConfig(image={"family": "vit", **VIT}, text=dict(family="gpt"))


def clip_late_fusion(**kw):
    from formers.models import CLIPConfig

    clip = CLIPConfig(image={"family": "vit", **VIT}, embed_dim=16,
                      text=dict(family="bert", vocab_size=61, d_model=32, n_heads=4, n_layers=1, max_seq_len=32,
                                dropout=0.0))
    return LateFusionConfig(clip=clip, n_outputs=4, hidden=16, dropout=0.0, **kw)


def test_late_fusion_on_frozen_clip_features(tmp_path):
    from formers.tasks.vqa import load_pretrained_trunk

    torch.manual_seed(0)
    model = build_model(clip_late_fusion())
    x, pixels = torch.randint(1, 61, (2, 7)), torch.randn(2, 3, 16, 16)
    out = model(x, pixel_values=pixels)
    assert out.logits.shape == (2, 4) and out.last_hidden_state.shape == (2, 1, 32)  # 2 x embed_dim features
    out.logits.sum().backward()
    assert all(p.grad is None for p in model.features.clip.parameters())  # frozen: a fixed feature extractor
    assert model.mlp[1].weight.grad is not None
    # a trained CLIP's weights come in through the vqa task's objective.pretrained
    torch.manual_seed(1)
    clip = build_model(model.config.clip)
    formers.save_model(clip, tmp_path)
    load_pretrained_trunk(model, str(tmp_path))
    for (name, a), b in zip(clip.state_dict().items(), model.features.clip.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_late_fusion_takes_clip_or_towers_not_both():
    from formers.errors import ConfigError

    with pytest.raises(ConfigError, match="image and text left null"):
        clip_late_fusion(image={"family": "vit", **VIT})


def captioner():
    from formers.models import CaptionerConfig

    torch.manual_seed(0)
    return build_model(CaptionerConfig(image={"family": "vit", **VIT}, vocab_size=40, d_model=32, n_heads=4,
                                       n_layers=2, dropout=0.0)).eval()


def test_captioner_contract(tmp_path):
    from formers.generation import generate

    model, pixels = captioner(), torch.randn(2, 3, 16, 16)
    ids = torch.randint(7, 40, (2, 6))
    logits = model(pixels, decoder_input_ids=ids).logits
    assert logits.shape == (2, 6, 40)
    changed = ids.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 40
    torch.testing.assert_close(model(pixels, decoder_input_ids=changed).logits[:, :4], logits[:, :4])  # causal
    assert not torch.allclose(model(torch.randn(2, 3, 16, 16), decoder_input_ids=ids).logits, logits)  # reads image
    cached = generate(model, pixels, max_new_tokens=5, eos_token_id=6)
    assert torch.equal(cached, generate(model, pixels, max_new_tokens=5, eos_token_id=6, use_cache=False))
    assert generate(model, pixels, max_new_tokens=5, eos_token_id=6, num_beams=3).shape[0] == 2
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(pixels, decoder_input_ids=ids).logits.float()
    assert (low - logits).abs().max() < 0.1 * logits.abs().max()  # bf16: ~0.4% per rounding, a few layers
    formers.save_model(model, tmp_path)
    assert torch.equal(formers.load(tmp_path)(pixels, decoder_input_ids=ids).logits, logits)


def test_vlp_contract(tmp_path):
    from formers.models import VLPConfig

    torch.manual_seed(0)
    trunk = dict(family="visualbert", vocab_size=61, d_model=32, n_heads=4, n_layers=1, max_seq_len=32,
                 dropout=0.0, image={"family": "vit", **VIT})
    model = build_model(VLPConfig(trunk=trunk, embed_dim=16)).eval()
    x, pixels = torch.randint(1, 61, (2, 7)), torch.randn(2, 3, 16, 16)
    out = model(x, pixel_values=pixels)
    assert out.logits.shape == (2, 7, 61) and out.nsp_logits.shape == (2, 2)  # MLM and match logits
    image = model.image_tokens(pixels)
    sim = model.similarity(model.image_embeds(image), model.text_embeds(x))
    assert sim.shape == (2, 2) and sim.dtype == torch.float32
    formers.save_model(model, tmp_path)
    assert torch.equal(formers.load(tmp_path)(x, pixel_values=pixels).nsp_logits, out.nsp_logits)
