"""The CLIP judge of generated Shapes images: loading from a clip-shapes checkpoint, judging, bookkeeping."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_text import shapes_tokenizer
from formers.errors import CheckpointError, ConfigError
from formers.models import CLIP, CLIPConfig, GPTConfig, ViTConfig
from formers.models.dalle import DALLE, DALLEConfig
from formers.models.vqvae import VQVAEConfig
from formers.nn.quantize import QuantizerConfig
from formers.storage import save_model
from formers.tasks import load_recipe
from formers.tasks.text_to_image_judge import judge_pairs, load_judge, measure_prompts, prompts_of
from formers.text_to_image import ClipScorer, rerank

ROOT = Path(__file__).resolve().parents[2]


def tiny_clip() -> CLIP:
    v = shapes_tokenizer().vocab_size
    torch.manual_seed(0)
    return CLIP(CLIPConfig(image=ViTConfig(d_model=16, n_heads=2, n_layers=1, image_size=24, patch_size=8,
                                           n_channels=3, dropout=0.0),
                           text=GPTConfig(vocab_size=v, d_model=16, n_heads=2, n_layers=1, max_seq_len=24, dropout=0.0),
                           embed_dim=8))


def test_load_judge_reads_the_statistics_and_wrapping_of_its_recipe(tmp_path):
    recipe = load_recipe(ROOT / "recipes/clip-shapes.yaml", {"objective.shapes.shapes.image_size": 24})
    save_model(tiny_clip(), tmp_path, shapes_tokenizer())
    with pytest.raises(CheckpointError, match="no extra.json with its recipe"):  # saved by hand: no recipe beside it
        load_judge(str(tmp_path))
    (tmp_path / "extra.json").write_text(json.dumps({"recipe": recipe.to_dict()}))
    scorer = load_judge(str(tmp_path))
    assert (scorer.mean, scorer.std) == Shapes(ShapesConfig(image_size=24)).stats
    assert scorer.wrap == ("[BOS]", "[EOS]")
    embeddings = scorer.image_embeddings(torch.rand(3, 3, 24, 24))
    assert embeddings.shape == (3, 8)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    other = load_recipe(ROOT / "recipes/vqvae-shapes.yaml")
    (tmp_path / "extra.json").write_text(json.dumps({"recipe": other.to_dict()}))
    with pytest.raises(ConfigError, match="not a CLIP trained on Shapes"):
        load_judge(str(tmp_path))


def test_judge_picks_the_candidate_whose_text_is_closest():
    shapes = ShapesConfig(image_size=24, max_objects=1)
    candidates = shapes.all_pairs
    scorer = ClipScorer(nn.Identity(), shapes_tokenizer(), (0.5,) * 3, (0.5,) * 3)
    scorer.image_embeddings = lambda images: torch.eye(64)[[5, 17, 63]]  # images "look like" candidates 5, 17, 63
    scorer.text_embeddings = lambda texts: torch.eye(64).repeat_interleave(3, 0)  # 3 prompts per candidate, in order
    assert judge_pairs(scorer, torch.zeros(3, 3, 24, 24), candidates).tolist() == [5, 17, 63]


def test_measure_prompts_counts_matches_before_and_after_reranking():
    shapes = ShapesConfig(image_size=24, max_objects=1, n_captions=1)
    overrides = {"objective.n_prompts": 6, "objective.samples_per_prompt": 2, "objective.shapes": shapes.to_dict()}
    recipe = load_recipe(ROOT / "recipes/dalle-shapes.yaml", overrides)
    vq = VQVAEConfig(image_size=24, hidden=8, n_res_blocks=0, quantizer=QuantizerConfig(codebook_size=8, code_dim=4))
    torch.manual_seed(0)
    model = DALLE(DALLEConfig(text_vocab_size=shapes_tokenizer().vocab_size, text_len=16, d_model=16, n_heads=2,
                              n_layers=1, dropout=0.0, vqvae=vq)).eval()
    candidates = shapes.all_pairs
    judged = 9  # every image is judged to show candidate 9
    scorer = ClipScorer(nn.Identity(), shapes_tokenizer(), (0.5,) * 3, (0.5,) * 3)
    scorer.image_embeddings = lambda images: torch.eye(64)[[judged] * len(images)]
    scorer.text_embeddings = lambda texts: (torch.eye(64).repeat_interleave(3, 0) if len(texts) == 192
                                            else torch.ones(len(texts), 64) / 8)
    result = measure_prompts(recipe, model, shapes_tokenizer(), scorer)
    for name, split in (("seen", "test"), ("heldout", "heldout")):
        _, pairs, _ = prompts_of(shapes, split, 6)
        share = sum(candidates.index(p) == judged for p in pairs) / 6
        assert result["metrics"][f"test/{name}_match"] == pytest.approx(share)
        assert result["metrics"][f"test/{name}_match_reranked"] == pytest.approx(share)
        assert result["metrics"][f"test/{name}_judge_real"] == pytest.approx(share)
        captions, images, order = result["samples"][name]
        assert images.shape == (6, 2, 3, 24, 24) and order.shape == (6, 2) and len(captions) == 6
    assert "seen pairs (6 prompts x 2 samples)" in result["report"]


def test_rerank_orders_samples_by_similarity_to_the_caption():
    scorer = ClipScorer(nn.Identity(), shapes_tokenizer(), (0.5,) * 3, (0.5,) * 3)
    sims = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])  # (P, N) caption-sample similarities
    scorer.image_embeddings = lambda images: sims.reshape(6, 1)
    scorer.text_embeddings = lambda texts: torch.ones(2, 1)
    order = rerank(scorer, ["a", "b"], torch.zeros(2, 3, 3, 4, 4))
    assert order.tolist() == [[1, 2, 0], [0, 2, 1]]
