"""Encoder-decoder loss (shift right, label smoothing) and the prefix LM (split, mask, suffix-only loss)."""

import math

import pytest
import torch

from formers.errors import DataError
from formers.models import GPT, GPTConfig
from formers.objectives import IGNORE_INDEX, PrefixLM, Seq2SeqLM, Seq2SeqLMConfig, collate_pairs, prefix_lm_split
from formers.objectives.seq2seq import shift_right

START, PAD = 7, 0


def test_shift_right_starts_with_the_decoder_start_token():
    labels = torch.tensor([[4, 5, 6], [4, IGNORE_INDEX, IGNORE_INDEX]])
    assert shift_right(labels, START, PAD).tolist() == [[START, 4, 5], [START, 4, PAD]]


def test_collate_pads_sources_and_ignores_padded_targets():
    batch = collate_pairs([torch.tensor([1, 2, 3]), torch.tensor([4])], [torch.tensor([5]), torch.tensor([6, 7])], PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, PAD, PAD]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, IGNORE_INDEX], [6, 7]]


def test_label_smoothed_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # (1, T_dec=2, V=3)
    labels = torch.tensor([[0, IGNORE_INDEX]])
    seen = {}

    class Fake(torch.nn.Module):
        config = type("Config", (), {"decoder_start_token_id": START})  # the model's own start token

        def forward(self, input_ids, attention_mask=None, decoder_input_ids=None):
            seen["decoder_input_ids"] = decoder_input_ids
            return type("Out", (), {"logits": logits})

    eps = 0.1
    log_p = [2.0 - math.log(math.exp(2.0) + 2), -math.log(math.exp(2.0) + 2), -math.log(math.exp(2.0) + 2)]
    nll = -log_p[0]
    smoothed = (1 - eps) * nll + eps * -sum(log_p) / 3  # Szegedy et al.: mix with the uniform distribution
    out = Seq2SeqLM(Seq2SeqLMConfig(label_smoothing=eps), pad_id=PAD)(
        Fake(), {"input_ids": labels.clamp(min=0), "labels": labels})
    # fp32 against the exact value: a few roundings of 6e-8 relative each; 1e-6 relative allows ~16
    assert out["loss"].item() == pytest.approx(smoothed, rel=1e-6)
    assert out["nll_loss"].item() == pytest.approx(nll, rel=1e-6)
    assert out["sequence_accuracy"].item() == 1.0  # the one counted token is the argmax
    assert seen["decoder_input_ids"].tolist() == [[START, 0]]
    wrong = Seq2SeqLM(decoder_start_token_id=START)(Fake(), {"input_ids": labels, "labels": torch.tensor([[1, 1]])})
    assert wrong["sequence_accuracy"].item() == 0.0 and wrong["accuracy"].item() == 0.5


def test_prefix_split_ignores_the_prefix():
    windows = torch.arange(11).repeat(500, 1)  # (B, T+1) with T = 10
    out = prefix_lm_split(windows, torch.Generator().manual_seed(0))
    p = out["prefix_lengths"]
    assert int(p.min()) == 1 and int(p.max()) == 10  # uniform over [1, T]
    for row in range(5):
        labels = out["labels"][row].tolist()
        # label i is token i + 1; it counts only if token i + 1 is in the suffix (index >= P)
        assert labels == [IGNORE_INDEX] * (int(p[row]) - 1) + list(range(int(p[row]), 11))
    with pytest.raises(DataError, match="cannot hold"):
        prefix_lm_split(windows[:, :2], torch.Generator(), min_prefix=2)


def test_prefix_is_bidirectional_and_the_suffix_causal():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=31, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, dropout=0.0,
                          causal=False)).eval()
    ids = torch.randint(0, 31, (1, 12))
    batch = {"input_ids": ids, "labels": ids, "prefix_lengths": torch.tensor([5])}
    captured = []
    original_forward = model.forward
    model.forward = lambda *a, **k: captured.append(original_forward(*a, **k)) or captured[-1]
    PrefixLM()(model, batch)
    changed_prefix, changed_suffix = ids.clone(), ids.clone()
    changed_prefix[0, 3] = (ids[0, 3] + 1) % 31
    changed_suffix[0, 8] = (ids[0, 8] + 1) % 31
    PrefixLM()(model, {**batch, "input_ids": changed_prefix})
    PrefixLM()(model, {**batch, "input_ids": changed_suffix})
    base, pre, suf = (c.logits[0] for c in captured)
    assert not torch.allclose(base[0], pre[0])  # position 0 sees prefix token 3
    # suffix is causal: the same numbers before position 8 (allclose: 1e-5 relative, for kernels that block the keys)
    assert torch.allclose(base[:8], suf[:8], atol=1e-6) and not torch.allclose(base[8], suf[8])
    loss = PrefixLM()(model, batch)["loss"]
    labels = batch["labels"]
    # the same fp32 sum in another order: ~1e-6 relative, 1e-5 keeps a 10x margin
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(base, labels[0]).item(), rel=1e-5)
