import pytest
import torch
from torch import nn

from formers import generate, quantize_weights
from formers.errors import ConfigError, SequenceTooLongError, TokenOutOfVocabError
from formers.generation import beam_search, left_pad, sample_next
from formers.models import GPT, BartConfig, EncoderDecoder, GPTConfig, ModelOutput, T5Config, TransformerConfig

TINY = dict(vocab_size=40, d_model=32, n_heads=4, n_layers=2, max_seq_len=64, dropout=0.0)
SEQ2SEQ = [TransformerConfig, T5Config, BartConfig]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


@pytest.fixture(params=["learned", "rotary", "alibi", "t5"])
def model(request):
    torch.manual_seed(0)
    return GPT(GPTConfig(**TINY, position=request.param)).eval()


def test_cached_generation_equals_recomputation(model):
    x = torch.randint(1, 40, (2, 5))
    fast = generate(model, x, max_new_tokens=12)
    slow = generate(model, x, max_new_tokens=12, use_cache=False)
    assert torch.equal(fast, slow)
    # and the logits of the generated sequence match a single full forward
    cache = model.new_cache(2, 17, dtype=torch.float32, device=torch.device("cpu"))
    step_logits = [model(fast[:, :5], cache=cache).logits[:, -1]]
    for t in range(5, 16):
        step_logits.append(model(fast[:, t:t + 1], cache=cache).logits[:, -1])
    full = model(fast[:, :16]).logits[:, 4:16]
    torch.testing.assert_close(torch.stack(step_logits, 1), full, atol=1e-5, rtol=1e-4)


def test_batch_of_prompts_of_different_lengths_matches_each_alone(model):
    prompts = [[5, 6, 7, 8, 9], [11, 12], [3]]
    ids, mask = left_pad(prompts, pad_id=0)
    batched = generate(model, ids, attention_mask=mask, max_new_tokens=8)
    for row, prompt in zip(batched, prompts, strict=True):
        alone = generate(model, torch.tensor([prompt]), max_new_tokens=8)
        assert row[-8:].tolist() == alone[0, -8:].tolist()


@pytest.mark.slow  # the first compile in a process builds torch's C++ runtime: ~80 s on 2 cores
@pytest.mark.parametrize("weights", ["fp32", "int8", "int4"])
def test_compiled_decoding_gives_the_eager_tokens(weights):
    torch.manual_seed(0)
    model = quantize_weights(GPT(GPTConfig(**TINY, position="rotary")).eval(), weights)
    ids, mask = left_pad([[5, 6, 7, 8, 9], [11, 12], [3]], pad_id=0)
    for kw in (dict(), dict(attention_mask=mask), dict(attention_mask=mask, num_beams=3)):
        eager = generate(model, ids, max_new_tokens=10, **kw)
        assert torch.equal(generate(model, ids, max_new_tokens=10, compile=True, **kw), eager), kw
    with pytest.raises(TokenOutOfVocabError):  # the embedding's own check is skipped under compile
        generate(model, torch.tensor([[5, 40]]), max_new_tokens=2, compile=True)


@pytest.mark.slow
def test_compiled_encoder_decoder_decoding_gives_the_eager_tokens():
    model = seq2seq(BartConfig)
    ids = torch.tensor([[5, 6, 7, 8, 9], [11, 12, 0, 0, 0]])
    kw = dict(attention_mask=(ids != 0).long(), max_new_tokens=8)
    assert torch.equal(generate(model, ids, compile=True, **kw), generate(model, ids, **kw))


def test_sampling_is_seeded_and_streamed(model):
    x = torch.randint(1, 40, (1, 4))
    streamed = []
    a = generate(model, x, max_new_tokens=10, do_sample=True, top_k=5, generator=torch.Generator().manual_seed(1),
                 streamer=lambda tok: streamed.append(int(tok[0])))
    b = generate(model, x, max_new_tokens=10, do_sample=True, top_k=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert streamed == a[0, 4:].tolist()


def test_eos_finishes_rows_and_pads():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).eval()
    x = torch.randint(1, 40, (1, 4))
    first = int(generate(model, x, max_new_tokens=1)[0, -1])
    out = generate(model, x, max_new_tokens=10, eos_token_id=first)
    assert out.shape == (1, 5) and int(out[0, -1]) == first


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    g = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, do_sample=True, top_k=2, generator=g)) for _ in range(200)}
    assert draws == {0, 1}
    draws = {int(sample_next(logits, do_sample=True, top_p=0.7, generator=g)) for _ in range(200)}
    assert draws == {0, 1}  # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: the nucleus is two tokens
    draws = {int(sample_next(logits, do_sample=True, top_p=0.4, generator=g)) for _ in range(50)}
    assert draws == {0}
    assert int(sample_next(logits, do_sample=False)) == 0


def test_bf16_autocast_generation_runs():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = generate(model, torch.randint(1, 40, (2, 3)), max_new_tokens=5)
    assert out.shape == (2, 8)


@pytest.mark.parametrize("kw", [dict(max_new_tokens=-1), dict(temperature=0.0), dict(top_k=0), dict(top_p=1.5)])
def test_bad_options_are_refused(kw):
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ConfigError):
        generate(model, torch.ones(1, 2, dtype=torch.long), **{"max_new_tokens": 3, **kw})


# --- encoder-decoder models and beam search ---------------------------------------------------------------


def seq2seq(cls):
    torch.manual_seed(0)
    return EncoderDecoder(cls(vocab_size=40, d_model=32, n_heads=4, n_layers=2, dropout=0.0)).eval()


@pytest.mark.parametrize("cls", SEQ2SEQ, ids=lambda c: c.__name__)
def test_encoder_decoder_cached_equals_uncached_and_padding_is_ignored(cls):
    model = seq2seq(cls)
    sources = [[5, 6, 7, 8, 9], [11, 12], [3]]
    ids = torch.tensor([s + [0] * (5 - len(s)) for s in sources])  # sources may be padded on either side
    mask = (torch.arange(5)[None] < torch.tensor([5, 2, 1])[:, None]).long()
    fast = generate(model, ids, attention_mask=mask, max_new_tokens=8)
    slow = generate(model, ids, attention_mask=mask, max_new_tokens=8, use_cache=False)
    assert torch.equal(fast, slow) and fast.shape == (3, 9)
    assert (fast[:, 0] == model.config.decoder_start_token_id).all()
    for row, source in zip(fast, sources, strict=True):
        assert torch.equal(row, generate(model, torch.tensor([source]), max_new_tokens=8)[0])
    beam = dict(attention_mask=mask, max_new_tokens=8, num_beams=3, eos_token_id=int(fast[0, 4]))
    assert torch.equal(generate(model, ids, **beam), generate(model, ids, **beam, use_cache=False))


@pytest.mark.parametrize("make", [lambda: GPT(GPTConfig(**TINY)), lambda: seq2seq(BartConfig)], ids=["gpt", "bart"])
def test_beam_search_with_one_beam_is_greedy(make):
    torch.manual_seed(0)
    model, x = make().eval(), torch.randint(3, 40, (3, 4))
    greedy = generate(model, x, max_new_tokens=10)
    eos = int(greedy[1, -5])  # a token greedy emits mid-way, so rows finish at different steps
    assert torch.equal(beam_search(model, x, num_beams=1, max_new_tokens=10), greedy)
    greedy = generate(model, x, max_new_tokens=10, eos_token_id=eos)
    beam = beam_search(model, x, num_beams=1, max_new_tokens=10, eos_token_id=eos, early_stopping=True)
    assert torch.equal(beam, greedy) and (greedy == eos).any()


class Bigram(nn.Module):
    """Next-token probabilities depend on the last token only: a case whose best sequence is known."""

    def __init__(self, probs: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(probs.log())

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None):
        logits = self.table(input_ids)
        return ModelOutput(logits=logits, last_hidden_state=logits)


def test_beam_search_finds_the_more_probable_sequence_greedy_misses():
    pad, eos, start, a, b, c = range(6)
    probs = torch.full((6, 6), 1 / 6)
    probs[start] = torch.tensor([0, 0, 0, 0.55, 0.45, 0])  # greedy takes A ...
    probs[a] = torch.tensor([0, 0.2, 0, 0.25, 0.25, 0.3])  # ... and then nothing is likely
    probs[b] = torch.tensor([0, 0.91, 0, 0.03, 0.03, 0.03])  # B is almost surely followed by EOS
    probs[c] = torch.tensor([0, 0.97, 0, 0.01, 0.01, 0.01])
    model, x = Bigram(probs.clamp(min=1e-9)), torch.tensor([[start]])
    kw = dict(max_new_tokens=6, eos_token_id=eos, pad_token_id=pad, use_cache=False)
    greedy = generate(model, x, **kw)[0].tolist()
    beam = generate(model, x, num_beams=2, **kw)[0].tolist()
    assert greedy == [start, a, c, eos]  # p = 0.55 * 0.3 * 0.97 = 0.16
    assert beam == [start, b, eos]  # p = 0.45 * 0.91 = 0.41
    # a strong length penalty (scores / length**3) prefers the longer hypothesis instead
    assert generate(model, x, num_beams=2, length_penalty=3.0, **kw)[0].tolist() == [start, a, c, eos]


def test_batched_beam_search_matches_each_prompt_alone():
    torch.manual_seed(0)
    model = GPT(GPTConfig(**TINY)).eval()
    prompts = [[5, 6, 7, 8, 9], [11, 12], [3]]
    ids, mask = left_pad(prompts, pad_id=0)
    batched = generate(model, ids, attention_mask=mask, max_new_tokens=6, num_beams=3, eos_token_id=7)
    for row, prompt in zip(batched, prompts, strict=True):
        alone = generate(model, torch.tensor([prompt]), max_new_tokens=6, num_beams=3, eos_token_id=7)[0]
        generated = row[ids.shape[1]:]
        assert generated[: len(alone) - len(prompt)].tolist() == alone[len(prompt):].tolist()


BAD_BEAMS = [dict(num_beams=0), dict(num_beams=2, do_sample=True), dict(num_beams=2, early_stopping="x")]


@pytest.mark.parametrize("kw", BAD_BEAMS)
def test_bad_beam_options_are_refused(kw):
    model = GPT(GPTConfig(**TINY))
    with pytest.raises(ConfigError):
        generate(model, torch.ones(1, 2, dtype=torch.long), **{"max_new_tokens": 3, **kw})


def test_decoding_past_learned_positions_is_refused_before_the_first_step():
    model = GPT(GPTConfig(**{**TINY, "max_seq_len": 16, "position": "learned"})).eval()
    prompt = torch.randint(0, 40, (2, 10))
    assert generate(model, prompt, max_new_tokens=7).shape == (2, 17)  # 16 positions fed: exactly the table
    streamed = []
    with pytest.raises(SequenceTooLongError, match="needs 17 positions .* stop at 16; lower max_new_tokens by 1"):
        generate(model, prompt, max_new_tokens=8, streamer=streamed.append)
    assert streamed == []
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.randint(1, 40, (1, 7))], 1)
    mask = (torch.arange(10) >= 3).long()[None]
    assert generate(model, padded, attention_mask=mask, max_new_tokens=10).shape == (1, 20)  # 7 real + 10 - 1 = 16
    bart = EncoderDecoder(BartConfig(vocab_size=40, d_model=32, n_heads=4, n_layers=1, n_decoder_layers=1,
                                     d_ff=64, max_seq_len=8, dropout=0.0)).eval()
    with pytest.raises(SequenceTooLongError, match="max_new_tokens=9"):
        generate(bart, torch.randint(4, 40, (1, 5)), max_new_tokens=9, num_beams=2)
    assert generate(bart, torch.randint(4, 40, (1, 5)), max_new_tokens=8).shape[1] <= 9
