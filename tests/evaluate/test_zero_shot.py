"""Zero-shot and retrieval metrics on hand-built similarity matrices, chance levels by enumeration."""

import itertools
import math

import pytest
import torch
from torch.nn import functional as F

from formers.errors import DataError
from formers.evaluate import (
    both_ways,
    chance_tail,
    class_embeddings,
    first_positive_ranks,
    retrieval_metrics,
    zero_shot_accuracy,
)


def test_ranks_recall_and_median_by_hand():
    # query q's positive is candidate q; the ranks are 1, 2, 4, 1 by construction
    sim = torch.tensor([
        [0.9, 0.1, 0.2, 0.0],
        [0.8, 0.7, 0.1, 0.0],
        [0.9, 0.8, 0.3, 0.5],
        [0.1, 0.2, 0.3, 0.4],
    ])
    eye = torch.eye(4, dtype=torch.bool)
    assert first_positive_ranks(sim, eye).tolist() == [1, 2, 4, 1]
    m = retrieval_metrics(sim, eye, ks=(1, 2, 3))
    assert m["R@1"] == 0.5 and m["R@2"] == 0.75 and m["R@3"] == 0.75
    assert m["median_rank"] == 1.5  # the mean of the two middle ranks, 1 and 2
    assert m["chance_R@1"] == pytest.approx(0.25) and m["chance_R@3"] == pytest.approx(0.75)
    assert m["chance_median_rank"] == 2  # one positive in 4: P(rank <= 2) = 1/2


def test_several_positives_count_the_best_one_and_ties_count_against():
    sim = torch.tensor([[0.1, 0.9, 0.5, 0.5], [0.3, 0.3, 0.3, 0.3]])
    positives = torch.tensor([[True, False, True, False], [False, True, False, False]])
    # query 0: its better positive (0.5) is beaten by 0.9 and tied by the other 0.5 -> rank 3
    # query 1: everything ties (a collapsed model) -> its positive ranks last, 4
    assert first_positive_ranks(sim, positives).tolist() == [3, 4]


def test_chance_levels_match_enumeration_of_every_ordering():
    n, m = 6, 2  # 2 positives among 6 candidates
    counts = torch.zeros(n + 1, dtype=torch.float64)
    for order in itertools.permutations(range(n)):
        first = min(order.index(0), order.index(1)) + 1  # candidates 0 and 1 are the positives
        counts[first] += 1
    p = counts / counts.sum()
    for r in range(1, n + 1):
        assert chance_tail(n, m, r).item() == pytest.approx(p[r + 1:].sum().item(), abs=1e-12)
    sim = torch.randn(3, n)
    positives = torch.zeros(3, n, dtype=torch.bool)
    positives[:, :2] = True
    metrics = retrieval_metrics(sim, positives, ks=(1, 3))
    assert metrics["chance_R@1"] == pytest.approx(2 / 6)
    assert metrics["chance_R@3"] == pytest.approx(p[1:4].sum().item())
    cdf = p.cumsum(0)
    assert metrics["chance_median_rank"] == int((cdf < 0.5).sum())  # smallest r with P(rank <= r) >= 1/2


def test_both_ways_reads_the_transpose():
    sim = torch.tensor([[1.0, 0.0], [0.9, 0.5]])  # image 1 prefers text 0, but each text prefers its own image
    out = both_ways(sim, torch.eye(2, dtype=torch.bool), ks=(1,))
    assert out["i2t/R@1"] == 0.5 and out["t2i/R@1"] == 1.0
    assert out["i2t/median_rank"] == 1.5


def test_class_embeddings_average_normalised_prompts_then_renormalise():
    table = {"a cat": [3.0, 0.0], "the cat": [0.0, 1.0], "a dog": [-1.0, 0.0], "the dog": [-2.0, 0.0]}
    calls = []

    def encode(texts):
        calls.append(texts)
        return torch.tensor([table[t] for t in texts])

    emb = class_embeddings(encode, ["cat", "dog"], ["a {}", "the {}"])
    assert calls == [["a cat", "the cat", "a dog", "the dog"]]  # one batch, class-major
    # cat: normalised prompts (1, 0) and (0, 1) -> mean (0.5, 0.5) -> renormalised (1, 1)/sqrt 2;
    # the unnormalised mean (1.5, 0.5) would point elsewhere
    assert torch.allclose(emb[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert torch.allclose(emb[1], torch.tensor([-1.0, 0.0]))
    with pytest.raises(DataError, match="must hold"):
        class_embeddings(encode, ["cat"], ["a cat"])


def test_zero_shot_accuracy_and_its_chance():
    classes = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), dim=-1)
    images = torch.tensor([[0.9, 0.1], [0.2, 0.8], [-0.7, 0.1], [0.6, 0.5], [0.1, 0.9]])
    labels = torch.tensor([0, 1, 2, 1, 1])  # image 3 leans to class 0: one miss
    out = zero_shot_accuracy(images, classes, labels)
    assert out["accuracy"] == pytest.approx(4 / 5)
    assert out["chance"] == pytest.approx(3 / 5)  # always answering class 1
    with pytest.raises(DataError, match="one label per image"):
        zero_shot_accuracy(images, classes, labels[:2])


def test_queries_without_a_positive_are_refused():
    with pytest.raises(DataError, match=r"queries \[1\] have no correct candidate"):
        first_positive_ranks(torch.zeros(2, 2), torch.tensor([[True, False], [False, False]]))
