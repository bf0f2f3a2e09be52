import pytest
import torch

from formers import generate
from formers.errors import ConfigError
from formers.generation import left_pad, sample_next
from formers.models import GPT, GPTConfig

TINY = dict(vocab_size=40, d_model=32, n_heads=4, n_layers=2, max_seq_len=64, dropout=0.0)


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
