"""Int8 decoding of a small trained model: it runs through `generate`, and its cost in quality stays bounded."""

import pytest
import torch
from torch.nn import functional as F

from formers import generate, quantize_weights
from formers.data.corpora import load_corpus
from formers.evaluate import greedy_agreement, perplexity
from formers.models import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # a tiny model


@pytest.fixture(scope="module")
def trained():
    """A byte-level GPT (2 layers, width 64) trained for 150 steps on Python's docs, and held-out windows."""
    data = torch.tensor(list(load_corpus("pydocs").encode()[:300_000]), dtype=torch.long)
    train, val = data[:270_000], data[270_000:]
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, d_model=64, n_heads=4, n_layers=2, max_seq_len=96, dropout=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        start = torch.randint(0, len(train) - 65, (16,), generator=g)
        batch = torch.stack([train[s:s + 65] for s in start.tolist()])
        logits = model(batch[:, :-1]).logits
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
    windows = val[: 64 * 65].view(64, 65)
    return model.eval(), windows


def int8_copy(model: GPT) -> GPT:
    copy = GPT(model.config)
    copy.load_state_dict(model.state_dict())
    return quantize_weights(copy.eval(), "int8")


def test_int8_decoding_costs_little_quality(trained):
    model, windows = trained
    quantized = int8_copy(model)
    fp32_ppl, int8_ppl = perplexity(model, windows), perplexity(quantized, windows)
    assert fp32_ppl < 16  # it learned more than byte frequencies (unigram: ~25), so the comparison means something
    # the bound benchmarks/README.md states: int8 costs under 1% of perplexity (here 13.423 -> 13.426, 0.02%)
    assert abs(int8_ppl / fp32_ppl - 1) < 0.01, (fp32_ppl, int8_ppl)
    agreement = greedy_agreement(model, quantized, windows[:40, :16], max_new_tokens=24)
    # argmaxes agree at >= 97% of the positions (near-ties flip; measured here: 98.6%, 28 of 40 continuations identical)
    assert agreement["token"] >= 0.97, agreement


def test_int8_generation_streams_and_samples_like_fp32(trained):
    model, windows = trained
    quantized = int8_copy(model)
    streamed = []
    out = generate(quantized, windows[:2, :10], max_new_tokens=12, do_sample=True, top_k=5,
                   generator=torch.Generator().manual_seed(0), streamer=streamed.append)
    assert out.shape == (2, 22) and len(streamed) == 12
    assert torch.equal(torch.stack(streamed, 1), out[:, 10:])


def test_fp32_weights_decode_exactly_as_before(trained):
    model, windows = trained
    before = generate(model, windows[:4, :16], max_new_tokens=16)
    assert torch.equal(generate(quantize_weights(model, "fp32"), windows[:4, :16], max_new_tokens=16), before)
