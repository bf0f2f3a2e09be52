"""Part (c) of studies/annotation.py: an image-text matching head trained on balanced vs unbalanced pairs.

The head is formers' late-fusion model over a trained, frozen CLIP (`family: late_fusion` with `clip:`): the
image's and the caption's unit embeddings side by side, then an MLP with two outputs (match / no match), trained
by cross-entropy. The CLIP being frozen, its features are computed once per pair and only the MLP trains (as a
linear probe trains on cached features): an MLP needs ~1,000 steps to learn a dot product from concatenated
vectors (measured on synthetic unit vectors: chance until step ~500-1,000 at lr 1e-3 to 3e-3).

Why not the vlp task's cross-attention ITM (ALBEF)? At this budget it does not learn (measured: a 2-layer
VisualBERT, one object per image, 900 steps: ITM loss 0.676 against ln 2 = 0.693; recipes/vlp-shapes.yaml needs
3,000 steps at full size), and the question here is the pairs' class balance, which any matching classifier meets.

Each training step holds `pairs` (image, text) rows from a pool of train-split images, `pairs / (1 + r)` of them
positives (the image's caption) and the rest negatives, half easy (another image's caption, false of this one)
and half hard (the caption with one attribute changed: Shapes' hard negatives). Evaluation: every image of a
split with its positive, an easy and a hard negative; accuracy on each, balanced accuracy (positives and
negatives weighted equally), the ROC AUC of the match probability (threshold-free), and the accuracy after
moving the decision threshold by the training prior, log r (logit adjustment, Menon et al. 2021).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from formers.data.batches import step_seed
from formers.data.shapes import Shapes
from formers.data.shapes_batches import CaptionBatches
from formers.data.shapes_text import ATTRIBUTES
from formers.data.tasks import SeededBatches
from formers.models.late_fusion import LateFusionConfig
from formers.objectives.causal_lm import token_cross_entropy
from formers.registry import build_model
from studies.common import curve, fit


@torch.no_grad()
def pair_pool(model: torch.nn.Module, data: Shapes, tokenizer, wrap: tuple[str, str], n: int,
              seed: int) -> dict[str, Any]:
    """Images 0..n-1 of `data`, each with its caption, an easy and a hard negative, as the frozen late-fusion
    model's features of each pair: {"features": {kind: (n, F)}, "usable_hard": (n,) bool}."""
    source = CaptionBatches(data, tokenizer, batch_size=n, seed=seed, wrap=wrap, hard_negatives=list(ATTRIBUTES))
    b = source.fixed_batches(n, batch_size=n)[0]
    scores = torch.rand(n, n, generator=torch.Generator().manual_seed(step_seed(seed, 11)))
    easy = scores.masked_fill(b["matches"], -1.0).argmax(1)  # a uniformly drawn caption false of the image
    ids, mask, pixels = b["input_ids"], b["attention_mask"], b["pixel_values"]
    texts = {"positive": (ids, mask), "easy": (ids[easy], mask[easy]),
             "hard": (b["negative_input_ids"], b["negative_attention_mask"])}
    model.eval()
    features = {k: torch.cat([model.features(i, m, None, x) for i, m, x in
                              zip(t[0].split(250), t[1].split(250), pixels.split(250), strict=True)])
                for k, t in texts.items()}
    usable_hard = ~b["negative_matches"].diagonal()  # a changed caption still true of its image is no negative
    return {"features": features, "usable_hard": usable_hard}


def training_pairs(pool: dict, negatives_per_positive: int, pairs: int, seed: int) -> SeededBatches:
    """`pairs` rows a step, pairs // (1 + r) of them positives, the rest easy and hard negatives in turn."""
    n_pos = pairs // (1 + negatives_per_positive)
    kinds = ["positive"] * n_pos + [("easy", "hard")[j % 2] for j in range(pairs - n_pos)]
    hard_ok = pool["usable_hard"]

    def make(g: torch.Generator) -> dict[str, torch.Tensor]:
        rows = torch.randint(len(hard_ok), (pairs,), generator=g).tolist()
        use = [k if k != "hard" or hard_ok[r] else "easy" for r, k in zip(rows, kinds, strict=True)]
        return {"features": torch.stack([pool["features"][k][r] for r, k in zip(rows, use, strict=True)]),
                "answers": torch.tensor([int(k == "positive") for k in use])}

    return SeededBatches(make, seed=seed)


def head_loss(model: torch.nn.Module, batch: dict) -> dict:
    """Cross-entropy of the late-fusion model's two logits from cached pair features (its MLP: the CLIP is frozen)."""
    return token_cross_entropy(model.mlp(batch["features"]), batch["answers"])


@torch.no_grad()
def match_logit(head: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """logit(match) - logit(no match): (N,)."""
    head.eval()
    out = head(features).float()
    head.train()
    return out[:, 1] - out[:, 0]


def auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties counted half (the Mann-Whitney statistic)."""
    above = (positive[:, None] > negative[None, :]).float() + 0.5 * (positive[:, None] == negative[None, :]).float()
    return float(above.mean())


def evaluate(head: torch.nn.Module, pool: dict, negatives_per_positive: int) -> dict[str, float]:
    scores = {k: match_logit(head, f) for k, f in pool["features"].items()}
    scores["hard"] = scores["hard"][pool["usable_hard"]]
    out = {f"{k}_accuracy": float(((s > 0) == (k == "positive")).float().mean()) for k, s in scores.items()}
    out["balanced_accuracy"] = (out["positive_accuracy"] + (out["easy_accuracy"] + out["hard_accuracy"]) / 2) / 2
    out["auc"] = auc(scores["positive"], torch.cat([scores["easy"], scores["hard"]]))
    shift = math.log(negatives_per_positive)  # the training prior's log-odds against a match
    pos, easy, hard = ((s + shift > 0).float().mean() for s in (scores["positive"], scores["easy"], scores["hard"]))
    out["prior_corrected_balanced_accuracy"] = float((pos + (2 - easy - hard) / 2) / 2)
    return out


def matcher(clip: torch.nn.Module) -> torch.nn.Module:
    """formers' late-fusion model with the trained CLIP, frozen, as its feature extractor."""
    model = build_model(LateFusionConfig(clip=clip.config, freeze_clip=True, n_outputs=2, hidden=256, dropout=0.0))
    model.features.clip.load_state_dict(clip.state_dict())
    return model


def train_matcher(initial: torch.nn.Module, pools: dict[str, dict], negatives_per_positive: int, *,
                  steps: int, pairs: int, lr: float, seed: int) -> dict[str, Any]:
    """A copy of the late-fusion model `initial` (every ratio starts from the same head) whose MLP is trained on
    pools["train"], measured on the other pools."""
    model = copy.deepcopy(initial)
    source = training_pairs(pools["train"], negatives_per_positive, pairs, seed)
    history = fit(model, head_loss, source, steps=steps, lr=lr, batch_size=pairs, log_every=max(steps // 10, 1),
                  seed=seed)["history"]
    measured = {split: evaluate(model.mlp, pool, negatives_per_positive) for split, pool in pools.items()
                if split != "train"}
    return {"train_loss": curve(history, "train/loss"), **measured}
