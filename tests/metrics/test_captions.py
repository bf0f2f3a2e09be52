"""BLEU-4 against sacrebleu (a maintained implementation) and CIDEr-D against values worked out by hand."""

import math

import pytest
import sacrebleu

from formers.errors import DataError
from formers.metrics import bleu4, cider_d

CANDIDATES = ["the cat sat on the mat", "a dog runs in the park today", "red circle at the top"]
REFERENCES = [["the cat is on the mat", "there is a cat on the mat"],
              ["a dog runs in a park", "the dog is running in the park today"],
              ["a red circle at the top left", "red circle top"]]


def test_bleu4_equals_sacrebleu_without_smoothing():
    want = sacrebleu.corpus_bleu(CANDIDATES, [list(r) for r in zip(*REFERENCES, strict=True)], tokenize="none",
                                 smooth_method="none").score / 100
    # the same counts and the same formula; only the order of float sums differs (~1e-16)
    assert bleu4(CANDIDATES, REFERENCES) == pytest.approx(want, rel=1e-12)


def test_bleu4_edges():
    assert bleu4(["a b c d"], [["a b c d"]]) == pytest.approx(1.0)
    assert bleu4(["a b c"], [["a b c d e"]]) == 0.0  # no 4-gram at all: 0 without smoothing, as COCO
    # brevity: candidate 4 words, closest reference 8 words -> exp(1 - 8/4) on top of precision 1
    assert bleu4(["a b c d"], [["a b c d e f g h"]]) == pytest.approx(math.exp(-1.0))


def test_cider_d_is_ten_for_perfect_distinctive_captions():
    # each candidate equals its only reference and shares no n-gram with the other image: cosine 1 at every order
    assert cider_d(["a b c d e", "f g h i j"], [["a b c d e"], ["f g h i j"]]) == pytest.approx(10.0)


def test_cider_d_by_hand():
    # two images; idf = log 2 for n-grams of one image only, 0 for "x" (both images' references hold it).
    # Image 0: candidate "a x", reference "a b x". Unigrams: c = {a: l, x: 0}, r = {a: l, b: l, x: 0},
    # l = log 2: dot = min(l, l) l = l^2, |c| = l, |r| = sqrt(2) l -> 1/sqrt(2). Bigrams: c = {(a, x): l},
    # r = {(a, b): l, (b, x): l}: no overlap -> 0; 3-, 4-grams: the candidate has none -> 0.
    # Length penalty exp(-(2 - 3)^2 / 72). Image 1: candidate = reference "x y" -> unigram {x: 0, y: l} cos 1,
    # bigram cos 1, none above: (1 + 1) / 4.
    got = cider_d(["a x", "x y"], [["a b x"], ["x y"]])
    image0 = 10 * (1 / math.sqrt(2)) / 4 * math.exp(-1 / 72)
    image1 = 10 * 2 / 4
    assert got == pytest.approx((image0 + image1) / 2, rel=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(DataError, match="one list of references per candidate"):
        bleu4(["a"], [])
    with pytest.raises(DataError, match="at least one reference"):
        cider_d(["a"], [[]])
