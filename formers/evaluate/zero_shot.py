"""Zero-shot classification and cross-modal retrieval from a dual encoder's embeddings.

Zero-shot (Radford et al. 2021, section 3.1): a class is the text embedding of its name put into
prompt templates ("a photo of a {}."); each prompt's embedding is L2-normalised, the class's
prompts are averaged, and the mean is normalised again (prompt ensembling, section 3.1.4). An image
is labelled with the class whose embedding is most similar to its own.

Retrieval (Karpathy & Fei-Fei 2015; CLIP's tables 13-14): every query ranks every candidate by
similarity; R@K is the share of queries with a correct candidate among the first K, the median rank
that of the first correct candidate. A query may have several correct candidates (an image's
captions, or images an identical caption describes): `positives` (Q, C) marks them all. Ties count
against the query (a collapsed model that scores everything equally ranks last, not first).

Every figure comes with its chance level: what a uniformly random ranking, or the best constant
guess, reaches on the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from formers.errors import DataError

DEFAULT_KS = (1, 5, 10)


def class_embeddings(
    encode_text: Callable[[list[str]], torch.Tensor], classes: Sequence[str], templates: Sequence[str]
) -> torch.Tensor:
    """(C, D): per class, the normalised mean of its normalised prompt embeddings."""
    if not classes or not templates:
        raise DataError(f"zero-shot needs classes and templates; got {len(classes)} classes, {len(templates)} "
                        "templates")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise DataError(f"prompt templates must hold '{{}}' where the class name goes; these do not: {bad}")
    prompts = [t.format(c) for c in classes for t in templates]
    emb = F.normalize(encode_text(prompts).float(), dim=-1)  # (C * T, D)
    per_class = emb.view(len(classes), len(templates), -1).mean(1)  # (C, D)
    return F.normalize(per_class, dim=-1)


def zero_shot_accuracy(image_emb: torch.Tensor, class_emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy of labelling each image (N, D) with its most similar class (C, D), and chance: the share
    of the most frequent label (the best constant guess; 1/C on a balanced set)."""
    if len(image_emb) != len(labels) or len(labels) == 0:
        raise DataError(f"{len(image_emb)} image embeddings for {len(labels)} labels; pass one label per image")
    predicted = (image_emb.float() @ class_emb.float().T).argmax(-1)  # (N,)
    chance = torch.bincount(labels, minlength=len(class_emb)).max().item() / len(labels)
    return {"accuracy": (predicted == labels).float().mean().item(), "chance": chance}


def first_positive_ranks(similarity: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """(Q,) 1-based rank of each query's best-scoring positive: 1 + the negatives scoring at least as high."""
    if similarity.shape != positives.shape or similarity.dim() != 2:
        raise DataError(f"similarity {tuple(similarity.shape)} and positives {tuple(positives.shape)} must both be "
                        "(queries, candidates)")
    if not positives.any(1).all():
        missing = (~positives.any(1)).nonzero().flatten()[:5].tolist()
        raise DataError(f"queries {missing} have no correct candidate; every query needs at least one positive")
    sim = similarity.float()
    best = sim.masked_fill(~positives, float("-inf")).max(1, keepdim=True).values  # (Q, 1)
    return 1 + ((sim >= best) & ~positives).sum(1)


def chance_tail(n: torch.Tensor, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """P(first positive's rank > r) when m of n candidates are positive and the order is uniformly random:
    C(n - r, m) / C(n, m), broadcast over tensors."""
    n, m, r = (torch.as_tensor(x, dtype=torch.float64) for x in (n, m, r))
    alive = n - r >= m
    k = torch.where(alive, n - r, m)  # a placeholder where the tail is empty (masked below)
    log_tail = (torch.lgamma(k + 1) - torch.lgamma(k - m + 1)) - (torch.lgamma(n + 1) - torch.lgamma(n - m + 1))
    return torch.where(alive, log_tail.exp(), torch.zeros_like(log_tail))


def retrieval_metrics(
    similarity: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """R@K and median rank of the first positive, each with its chance level under a random ranking."""
    ranks = first_positive_ranks(similarity, positives)  # (Q,)
    n = similarity.shape[1]
    m = positives.sum(1)  # (Q,)
    out = {}
    for k in ks:
        out[f"R@{k}"] = (ranks <= k).float().mean().item()
        out[f"chance_R@{k}"] = (1 - chance_tail(n, m, min(k, n))).mean().item()
    out["median_rank"] = torch.quantile(ranks.double(), 0.5).item()
    r = torch.arange(1, n + 1, dtype=torch.float64)  # (N,)
    tails = chance_tail(n, m[:, None], r[None, :])  # (Q, N): P(rank > r)
    chance_medians = 1 + (tails > 0.5).sum(1)  # (Q,) smallest r with P(rank <= r) >= 1/2
    out["chance_median_rank"] = torch.quantile(chance_medians.double(), 0.5).item()
    return out


def both_ways(similarity: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Image->text and text->image retrieval from one (N_images, N_texts) similarity matrix."""
    i2t = retrieval_metrics(similarity, positives, ks)
    t2i = retrieval_metrics(similarity.T, positives.T, ks)
    return {**{f"i2t/{k}": v for k, v in i2t.items()}, **{f"t2i/{k}": v for k, v in t2i.items()}}
