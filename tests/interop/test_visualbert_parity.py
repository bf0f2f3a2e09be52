"""VisualBERT parity with Hugging Face `transformers`, both directions, on random-init reference models.

HF -> formers: a VisualBertModel / VisualBertForPreTraining save_pretrained folder loads with `formers.load`.
formers -> HF: `save_hf` writes a folder `from_pretrained` loads with no missing, unexpected or mismatched
keys. Hidden states over text + visual tokens, the pooled vector and (pretraining heads) the MLM and
sentence-image logits agree with padded text, padded visual tokens and segment ids.
"""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import formers
from formers.errors import ConfigError
from formers.interop import save_hf
from formers.models import VisualBertConfig
from formers.registry import build_model

# Same fp32 math with sums in another order (SDPA, fused qkv): ~1e-6 of the outputs' scale. 1e-4 of the scale
# leaves 100x room, while one wrong weight or a misplaced norm moves outputs by O(1) (weights N(0, 0.3)).
RELATIVE = 1e-4
V, VISUAL_DIM = 97, 12
# a bare VisualBertModel has no pretraining heads: formers.load says so, as it should
pytestmark = pytest.mark.filterwarnings("ignore:.*has no weights for")
HF = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
          max_position_embeddings=40, vocab_size=V, visual_embedding_dim=VISUAL_DIM)
BUILDERS = {
    "visualbert": lambda: tf.VisualBertModel(tf.VisualBertConfig(**HF)),
    "visualbert-pretraining-gelu-new": lambda: tf.VisualBertForPreTraining(tf.VisualBertConfig(
        **{**HF, "num_attention_heads": 2}, hidden_act="gelu_new", type_vocab_size=3)),
}


def reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # every weight redrawn at a scale where mistakes show; norms near 1
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                is_norm_scale = "layernorm" in key.lower() and key.endswith("weight")
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.3 + float(is_norm_scale))
    return model


def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    mask = (torch.arange(9)[None] < torch.tensor([9, 6, 3])[:, None]).long()
    visual_mask = (torch.arange(5)[None] < torch.tensor([5, 5, 2])[:, None]).long()
    return {"input_ids": torch.randint(3, V, (3, 9), generator=g) * mask, "attention_mask": mask,
            "token_type_ids": (torch.arange(9)[None] >= 4).long().expand(3, -1),
            "visual_embeds": torch.randn(3, 5, VISUAL_DIM, generator=g), "visual_attention_mask": visual_mask}


def hf_outputs(model, x) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(**x)
    if isinstance(model, tf.VisualBertForPreTraining):
        return {"logits": out.prediction_logits[:, :9], "nsp_logits": out.seq_relationship_logits}
    return {"last_hidden_state": out.last_hidden_state, "pooled": out.pooler_output}


def our_outputs(model, x) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        out = model(**x)
    return {"last_hidden_state": out.last_hidden_state, "pooled": out.pooled, "logits": out.logits,
            "nsp_logits": out.nsp_logits}


@pytest.fixture(scope="module", params=list(BUILDERS))
def pair(request, tmp_path_factory):
    name, folder = request.param, tmp_path_factory.mktemp(request.param)
    ref = reference(name)
    ref.save_pretrained(folder / "hf")
    ours = formers.load(folder / "hf")
    save_hf(ours, folder / "ours")
    # the export is always a VisualBertForPreTraining (the heads a bare model lacks keep their initial values)
    back, info = tf.VisualBertForPreTraining.from_pretrained(folder / "ours", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    back = back.eval()
    return ref, ours, back if isinstance(ref, tf.VisualBertForPreTraining) else back.visual_bert


def assert_close(ours: dict, theirs: dict) -> None:
    for key, want in theirs.items():
        got = ours[key]
        real = torch.isfinite(want)
        scale = want.abs().max()
        assert (got - want)[real].abs().max() <= RELATIVE * scale, key


def test_hf_to_formers(pair):
    ref, ours, _ = pair
    x = inputs()
    want = hf_outputs(ref, x)
    got = our_outputs(ours, x)
    if "last_hidden_state" in want:  # padded positions differ in neither: both mask keys only
        assert got["last_hidden_state"].shape == want["last_hidden_state"].shape
    assert_close(got, want)


def test_formers_to_hf(pair):
    ref, _, back = pair
    x = inputs()
    assert_close(hf_outputs(back, x), hf_outputs(ref, x))


def test_export_refuses_an_image_tower(tmp_path):
    config = VisualBertConfig(vocab_size=V, d_model=32, n_heads=4, n_layers=1, max_seq_len=40, image=dict(
        family="cnn", widths=[8, 16], depths=[1, 1], groups=4))
    with pytest.raises(ConfigError, match="image"):
        save_hf(build_model(config), tmp_path)
    assert not any(tmp_path.iterdir())
