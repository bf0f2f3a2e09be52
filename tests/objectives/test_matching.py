"""Negative mining, ITC, ITM, MLM and masked-patch terms of the vision-language objective, on a tiny VLP model."""

import pytest
import torch

from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_batches import MatchingBatches
from formers.data.shapes_text import shapes_tokenizer
from formers.errors import DataError
from formers.models import VLPConfig
from formers.objectives.matching import (
    VisionLanguagePretraining,
    VLPObjectiveConfig,
    rerank_retrieval,
    sample_negatives,
)
from formers.registry import build_model

TOK = shapes_tokenizer()


@pytest.fixture(scope="module")
def batch():
    data = Shapes(ShapesConfig(image_size=24), split="train", seed=0)
    return MatchingBatches(data, TOK, batch_size=8, seed=0).fixed_batches(8)[0]


def tiny_model():
    torch.manual_seed(0)
    trunk = dict(family="visualbert", vocab_size=TOK.vocab_size, d_model=32, n_heads=4, n_layers=1, max_seq_len=40,
                 dropout=0.0, image=dict(family="vit", image_size=24, patch_size=8, d_model=16, n_heads=2, n_layers=1))
    return build_model(VLPConfig(trunk=trunk, embed_dim=16))


def objective(**weights):
    specials = [TOK.pad_id, TOK.cls_id, TOK.sep_id, TOK.mask_id, TOK.unk_id]
    return VisionLanguagePretraining(VLPObjectiveConfig(**weights), mask_id=TOK.mask_id, vocab_size=TOK.vocab_size,
                                     special_ids=specials)


def test_sampled_negatives_avoid_the_group_and_follow_the_similarity():
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    sim = torch.tensor([[0.0, 9.0, 5.0, 0.0]] * 4)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_negatives(sim, same, g) for _ in range(400)])  # (400, B)
    assert not same.gather(1, draws.T).any()  # never the positive nor its duplicate (same group)
    # row 0 may pick 2 (score 5) or 3 (score 0): softmax gives 2 with p = 1/(1+e^-5) ~ 0.993
    assert (draws[:, 0] == 2).float().mean() > 0.95
    uniform = torch.stack([sample_negatives(sim, same, g, uniform=True) for _ in range(400)])
    assert 0.35 < (uniform[:, 0] == 2).float().mean() < 0.65  # easy negatives: 1/2 each, 400 draws (sd 0.025)


def test_a_row_without_negatives_is_refused():
    with pytest.raises(DataError, match="another group"):
        sample_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), torch.Generator())


def test_every_term_reports_and_trains(batch):
    model = tiny_model().train()
    out = objective(mim_weight=1.0)(model, batch)
    for key in ("itc_loss", "itm_loss", "mlm_loss", "mim_loss", "itm_positive_accuracy", "itm_mined_text_accuracy",
                "itm_mined_image_accuracy", "itm_hard_text_accuracy"):
        assert torch.isfinite(out[key]), key
    assert "itm_easy_text_accuracy" not in out  # easy negatives are measured in eval only
    expected = out["itc_loss"] + out["itm_loss"] + out["mlm_loss"] + out["mim_loss"]
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    for name in ("itm_head.weight", "patch_head.weight", "text_projection.weight", "image_projection.weight",
                 "trunk.mlm_head.dense.weight", "trunk.visual_tokens.tower.patches.projection.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        assert "itm_easy_text_accuracy" in objective()(model, batch)


def test_the_same_batch_draws_the_same_negatives_and_masks(batch):
    model = tiny_model().eval()
    with torch.no_grad():
        a, b = objective()(model, batch), objective()(model, batch)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_zero_weights_skip_their_terms(batch):
    out = objective(itm_weight=0.0, mlm_weight=0.0)(tiny_model().train(), batch)
    assert "itm_loss" not in out and "mlm_loss" not in out
    torch.testing.assert_close(out["loss"], out["itc_loss"])


def test_reranking_reads_the_matching_head(batch):
    model = tiny_model().eval()
    got = rerank_retrieval(model, batch, k=3)
    assert set(got) == {"itc_recall@1", "itc_top3_itm_recall@1"}
    assert all(0.0 <= v <= 1.0 for v in got.values())
    with torch.no_grad():  # a head that says "match" only for the diagonal pairs' [CLS] cannot be built here,
        model.itm_head.weight.zero_()  # but a constant head must keep ITC's first choice (argmax of equal = first)
        model.itm_head.bias.copy_(torch.tensor([0.0, 1.0]))
    assert rerank_retrieval(model, batch, k=3)["itc_top3_itm_recall@1"] == got["itc_recall@1"]
