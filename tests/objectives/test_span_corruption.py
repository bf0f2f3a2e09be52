"""T5 span corruption: noise density, mean span length, sentinels from the top, exact reconstruction."""

import pytest
import torch

from formers.errors import ConfigError, DataError
from formers.objectives import SpanCorruptionConfig, fill_sentinels, sentinel_id, span_corrupt
from formers.objectives.span_corruption import noise_span_lengths

V, N_SENTINELS, EOS = 500, 100, 1


def corrupt(tokens, seed=0, density=0.15, mean=3.0):
    return span_corrupt(tokens, noise_density=density, mean_span_length=mean, vocab_size=V,
                        n_sentinels=N_SENTINELS, eos_id=EOS, generator=torch.Generator().manual_seed(seed))


def tokens(n, seed=0):
    return torch.randint(2, V - N_SENTINELS, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("length", [2, 3, 17, 64, 200])
@pytest.mark.parametrize("density, mean", [(0.15, 3.0), (0.5, 1.0), (0.3, 8.0)])
def test_filling_the_sentinels_reconstructs_the_original(length, density, mean):
    for seed in range(3):
        original = tokens(length, seed)
        inputs, targets = corrupt(original, seed, density, mean)
        assert torch.equal(fill_sentinels(inputs, targets, V, N_SENTINELS), torch.cat([original, torch.tensor([EOS])]))
        assert inputs[-1] == targets[-1] == EOS


def test_sentinels_count_down_from_the_end_of_the_vocabulary():
    inputs, targets = corrupt(tokens(100))
    sentinels = [t for t in inputs.tolist() if t >= V - N_SENTINELS]
    assert sentinels == [V - 1 - i for i in range(len(sentinels))] == [sentinel_id(i, V) for i in range(len(sentinels))]
    assert targets[0] == V - 1  # the target starts with <extra_id_0>
    assert inputs[0] != V - 1  # and T5's first span is always kept


@pytest.mark.parametrize("density, mean", [(0.15, 3.0), (0.15, 1.0), (0.3, 5.0)])
def test_noise_density_and_mean_span_length(density, mean):
    noise_total, spans, lengths = 0, 0, []
    for seed in range(20):
        kept, noise = noise_span_lengths(512, density, mean, torch.Generator().manual_seed(seed))
        assert kept.sum() + noise.sum() == 512 and bool((kept > 0).all()) and bool((noise > 0).all())
        noise_total += noise.sum().item()
        spans += len(noise)
        lengths += noise.tolist()
    assert abs(noise_total / (20 * 512) - density) < 0.002
    assert abs(noise_total / spans - mean) < 0.1 * mean
    if mean > 1:
        assert len(set(lengths)) > 3  # lengths vary around the mean, spans are not all equal


def test_input_and_target_lengths():
    inputs, targets = corrupt(tokens(200))
    n_noise, n_spans = round(200 * 0.15), round(round(200 * 0.15) / 3)
    assert len(inputs) == 200 - n_noise + n_spans + 1 and len(targets) == n_noise + n_spans + 1


def test_bad_input_is_refused():
    with pytest.raises(DataError, match="sentinel ids"):
        corrupt(torch.tensor([3, 4, V - 1]))
    with pytest.raises(DataError, match="n_sentinels=2"):
        span_corrupt(tokens(200), noise_density=0.5, mean_span_length=1.0, vocab_size=V, n_sentinels=2, eos_id=EOS,
                     generator=torch.Generator())
    with pytest.raises(DataError, match="at least 2 tokens"):
        corrupt(tokens(1))
    with pytest.raises(ConfigError, match="noise_density=1.0"):
        SpanCorruptionConfig(noise_density=1.0)
