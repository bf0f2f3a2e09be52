"""Corpus BLEU-4 and CIDEr-D, as the COCO caption evaluation (pycocoevalcap) computes them.

Implemented here because pycocoevalcap is not installable offline on this machine's index; both follow its
code path exactly (tokens are whitespace-split, lower-cased strings; each image has one candidate and one
or more references):

BLEU-4 (Papineni et al. 2002): clipped n-gram counts summed over the corpus for n = 1..4, the geometric
mean of the four precisions, times the brevity penalty exp(1 - r / c) when c < r, c the candidates' total
length and r the sum over images of the reference length closest to the candidate's (ties: the shorter).

CIDEr-D (Vedantam et al. 2015, the "-D" variant used by COCO): each sentence becomes, for n = 1..4, a
vector of tf-idf weights, tf = the n-gram's count and idf = log(N images) - log(df), df = how many images'
references contain the n-gram. For candidate c and reference r:
    sim_n = sum_g min(c_g, r_g) r_g / (|c| |r|)   (the candidate's weights clipped by the reference's)
            * exp(-(len(c) - len(r))^2 / (2 sigma^2)),  sigma = 6 (the length penalty)
    CIDEr-D(image) = 10 * mean over references of mean over n of sim_n;  the corpus score is the mean.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from formers.errors import DataError

Ngrams = Counter


def ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references) or not candidates:
        raise DataError(f"{len(candidates)} candidates and {len(references)} reference lists: give one list of "
                        "references per candidate, and at least one candidate")
    if any(not refs for refs in references):
        raise DataError("every candidate needs at least one reference")


def bleu4(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 in [0, 1]; 0 when some order has no matching n-gram at all (no smoothing, as COCO)."""
    _check(candidates, references)
    matched, total = [0] * 4, [0] * 4
    c_len = r_len = 0
    for cand, refs in zip(candidates, references, strict=True):
        words, ref_words = _tokens(cand), [_tokens(r) for r in refs]
        c_len += len(words)
        r_len += min((abs(len(r) - len(words)), len(r)) for r in ref_words)[1]
        for n in range(1, 5):
            counts = ngrams(words, n)
            most = Counter()
            for r in ref_words:
                most |= ngrams(r, n)  # the most times any reference holds each n-gram
            matched[n - 1] += sum(min(k, most[g]) for g, k in counts.items())
            total[n - 1] += max(len(words) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / 4
    brevity = 1.0 if c_len >= r_len else math.exp(1 - r_len / max(c_len, 1))
    return brevity * math.exp(log_precision)


def _tfidf(words: list[str], df: Counter, log_n: float) -> tuple[list[dict], list[float], int]:
    vectors, norms = [], []
    for n in range(1, 5):
        vec = {g: k * (log_n - math.log(max(1.0, df[g]))) for g, k in ngrams(words, n).items()}
        vectors.append(vec)
        norms.append(math.sqrt(sum(v * v for v in vec.values())))
    return vectors, norms, len(words)


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]], sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (the COCO scale: 10 x cosine; a perfect candidate of distinctive words scores 10)."""
    _check(candidates, references)
    refs = [[_tokens(r) for r in rs] for rs in references]
    df: Counter = Counter()
    for rs in refs:  # document frequency: images whose references hold the n-gram
        df.update({g for r in rs for n in range(1, 5) for g in ngrams(r, n)})
    log_n = math.log(float(len(candidates)))
    scores = []
    for cand, rs in zip(candidates, refs, strict=True):
        c_vec, c_norm, c_len = _tfidf(_tokens(cand), df, log_n)
        total = 0.0
        for r in rs:
            r_vec, r_norm, r_len = _tfidf(r, df, log_n)
            penalty = math.exp(-((c_len - r_len) ** 2) / (2 * sigma**2))
            sims = []
            for n in range(4):
                dot = sum(min(v, r_vec[n].get(g, 0.0)) * r_vec[n].get(g, 0.0) for g, v in c_vec[n].items())
                sims.append(dot / (c_norm[n] * r_norm[n]) * penalty if c_norm[n] and r_norm[n] else 0.0)
            total += sum(sims) / 4
        scores.append(10.0 * total / len(rs))
    return sum(scores) / len(scores)
