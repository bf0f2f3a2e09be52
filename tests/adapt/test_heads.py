"""Task heads on any trunk, their objectives, and the adaptation batch sources."""

import pytest
import torch

import formers
from formers.adapt import fixed_batches, labelled_batches, masked_text_batches, padded, pair_batches
from formers.errors import ConfigError, DataError
from formers.models import GPT, Bert, BertConfig, GPTConfig, SequenceClassifier, SpanQA, TokenClassifier, with_head
from formers.models.heads import SequenceClassifierConfig
from formers.objectives import (
    IGNORE_INDEX,
    PairContrastive,
    SequenceClassification,
    SequenceRegression,
    SpanExtraction,
    TokenClassification,
    best_spans,
)
from tests.adapt.helpers import TINY, tiny_classifier

IDS = torch.randint(4, 40, (2, 7), generator=torch.Generator().manual_seed(0))
MASK = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])


def test_pooling_reads_cls_or_the_mean_of_real_tokens():
    torch.manual_seed(0)
    bert = Bert(BertConfig(**TINY)).eval()
    hidden = bert.encode(IDS, MASK)
    mean = with_head(SequenceClassifier, bert, n_outputs=3, pooling="mean").eval()
    cls = with_head(SequenceClassifier, bert, n_outputs=3, pooling="cls").eval()
    cls.head.load_state_dict(mean.head.state_dict())
    torch.testing.assert_close(mean(IDS, MASK).logits[1], mean.head(hidden[1, :4].mean(0)))  # padding left out
    torch.testing.assert_close(cls(IDS, MASK).logits, cls.head(hidden[:, 0]))


def test_heads_on_an_encoder_skip_the_pretraining_heads():
    model = tiny_classifier()
    called = []
    model.trunk.mlm_head.register_forward_hook(lambda *a: called.append(1))
    model(IDS, MASK)
    assert called == []  # Bert.encode: the 40-way MLM projection is never computed


def test_heads_on_a_decoder_trunk_read_its_last_hidden_state():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=2, max_seq_len=16)).eval()
    tagger = with_head(TokenClassifier, gpt, n_labels=5).eval()
    out = tagger(IDS, MASK)
    assert out.logits.shape == (2, 7, 5)
    torch.testing.assert_close(out.last_hidden_state, gpt(IDS, attention_mask=MASK).last_hidden_state)


def test_a_fine_tuned_head_reloads_with_formers_load(tmp_path):
    model = tiny_classifier().eval()
    formers.save_model(model, tmp_path)
    loaded = formers.load(tmp_path)
    assert type(loaded) is SequenceClassifier and loaded.config.pooling == "mean"
    torch.testing.assert_close(loaded(IDS, MASK).logits, model(IDS, MASK).logits)
    with pytest.raises(ConfigError, match="'family'"):
        SequenceClassifierConfig(trunk={"d_model": 8})


def test_objectives_of_the_heads():
    torch.manual_seed(0)
    bert = Bert(BertConfig(**TINY))
    cls = SequenceClassification()(with_head(SequenceClassifier, bert, n_outputs=3),
                                   {"input_ids": IDS, "attention_mask": MASK, "labels": torch.tensor([0, 2])})
    assert cls["loss"] > 0 and 0 <= cls["accuracy"] <= 1
    regression = with_head(SequenceClassifier, bert, n_outputs=1).eval()
    reg = SequenceRegression()(regression, {"input_ids": IDS, "labels": torch.tensor([0.5, -1.0])})
    scores = regression(IDS).logits.squeeze(-1).detach()
    assert reg["loss"].item() == pytest.approx(float(((scores - torch.tensor([0.5, -1.0])) ** 2).mean()), rel=1e-5)
    with pytest.raises(DataError, match="do not fit the head's 1 outputs"):
        SequenceRegression()(regression, {"input_ids": IDS, "labels": torch.zeros(2, 3)})
    labels = torch.full((2, 7), IGNORE_INDEX)
    labels[:, 1] = 3
    tok = TokenClassification()(with_head(TokenClassifier, bert, n_labels=4), {"input_ids": IDS, "labels": labels})
    assert tok["loss"] > 0
    qa = SpanExtraction()(with_head(SpanQA, bert), {"input_ids": IDS, "attention_mask": MASK,
                                                     "start_positions": torch.tensor([1, 2]),
                                                     "end_positions": torch.tensor([3, 2])})
    assert qa["loss"] > 0 and 0 <= qa["exact_match"] <= 1


def test_best_span_keeps_start_before_end_inside_the_mask():
    logits = torch.zeros(1, 6, 2)
    logits[0, 4, 0] = 5.0  # best start alone at 4, best end alone at 1: not a valid span
    logits[0, 1, 1] = 5.0
    logits[0, 5, 1] = 3.0
    logits[0, 4, 1] = 1.0
    assert best_spans(logits).tolist() == [[4, 5]]
    assert best_spans(logits, attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0]])).tolist() == [[4, 4]]


def test_pair_contrastive_finds_identical_pairs():
    model = tiny_classifier().eval()
    texts = [[1, *range(5 + i, 12 + i), 2] for i in range(0, 24, 3)]
    batch = {**padded(texts), **padded(texts, prefix="pair_")}
    out = PairContrastive()(model, batch)
    assert float(out["accuracy"]) == 1.0 and out["loss"].item() < torch.log(torch.tensor(8.0))  # below chance


def test_batch_sources_are_seeded_and_shaped():
    seqs = [[1, 5, 6, 2], [1, 7, 2], [1, 8, 9, 10, 2]]
    a, b = labelled_batches(seqs, [0, 1, 2], batch_size=4, seed=3), labelled_batches(seqs, [0, 1, 2], batch_size=4,
                                                                                        seed=3)
    first, second = a.next_batch(), b.next_batch()
    assert all(torch.equal(first[k], second[k]) for k in first)
    lengths = first["attention_mask"].sum(1)
    assert all(len(seqs[int(y)]) == n for y, n in zip(first["labels"], lengths, strict=True))
    pairs = pair_batches([(s, s) for s in seqs], batch_size=3, seed=0).next_batch()
    assert len({tuple(r.tolist()) for r in pairs["input_ids"]}) == 3 and "pair_attention_mask" in pairs
    masked = masked_text_batches(seqs * 10, batch_size=8, seed=0, mask_id=3, vocab_size=40, special_ids=[1, 2],
                                 mask_rate=0.5).next_batch()
    chosen = masked["labels"] != IGNORE_INDEX
    assert chosen.any() and not (chosen & (masked["attention_mask"] == 0)).any()
    assert [len(b["labels"]) for b in fixed_batches(seqs, [0, 1, 2], batch_size=2)] == [2, 1]
    with pytest.raises(DataError, match="3 texts but 2 labels"):
        labelled_batches(seqs, [0, 1], batch_size=2, seed=0)
    with pytest.raises(DataError, match="exceeds the 3 pairs"):
        pair_batches([(s, s) for s in seqs], batch_size=4, seed=0)
