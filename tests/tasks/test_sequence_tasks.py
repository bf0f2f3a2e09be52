"""Algorithmic sequence tasks: correct answers, exact retrieval distance, seeded, length splits, resumable."""

import random

import pytest
import torch

from formers.data.tasks import (
    ALPHABET,
    SeededBatches,
    SequenceTaskConfig,
    held_out_examples,
    make_example,
    retrieval_example,
    sample_examples,
    sequence_tokenizer,
)
from formers.errors import CheckpointError, ConfigError, DataError


@pytest.mark.parametrize("task", ["copy", "reverse", "sort", "add"])
def test_answers_are_right(task):
    config = SequenceTaskConfig(task=task, min_size=1, max_size=9)
    rng = random.Random(0)
    for size in range(1, 10):
        source, target = make_example(config, size, rng)
        if task == "add":
            a, b = source.split("+")
            assert len(a) == len(b) == size and int(target) == int(a) + int(b)
        else:
            assert len(source) == size and set(source) <= set("0123456789")
            expected = {"copy": source, "reverse": source[::-1], "sort": "".join(sorted(source))}[task]
            assert target == expected


@pytest.mark.parametrize("distance", [0, 1, 5, 6, 37, 300])
def test_retrieval_distance_is_exact_and_the_answer_right(distance):
    rng = random.Random(distance)
    for _ in range(20):
        source, value = retrieval_example(rng, distance, key_len=2, value_len=2)
        store, key = source.split("|?")
        pairs = [p for p in store.rstrip(".").split(";") if p]
        assert len({p.split(":")[0] for p in pairs}) == len(pairs)  # keys are distinct
        assert dict(p.split(":") for p in pairs)[key] == value
        end_of_pair = store.index(f"{key}:{value};") + len(f"{key}:{value};")
        assert len(store) - end_of_pair == distance


def test_seeded_examples_and_length_split():
    config = SequenceTaskConfig(task="reverse", min_size=1, max_size=12, held_out_sizes=[5, 9])
    a = sample_examples(config, 200, random.Random(1))
    assert a == sample_examples(config, 200, random.Random(1)) != sample_examples(config, 200, random.Random(2))
    assert {len(s) for s, _ in a} == set(config.train_sizes) == set(range(1, 13)) - {5, 9}
    held = held_out_examples(config, per_size=10, seed=0)
    assert len(held) == 20 and {len(s) for s, _ in held} == {5, 9}


def test_tokenizer_covers_the_alphabet():
    tok = sequence_tokenizer()
    assert tok.vocab_size == 3 + len(ALPHABET) and tok.pad_id == 0 and tok.eos_id == 1
    ids = tok.encode(ALPHABET)
    assert len(ids) == len(ALPHABET) and tok.unk_id not in ids and tok.decode(ids) == ALPHABET


def test_seeded_batches_resume_exactly():
    def make(g):
        return {"x": torch.randint(100, (4,), generator=g)}

    source = SeededBatches(make, seed=3)
    run = [source.next_batch()["x"] for _ in range(5)]
    resumed = SeededBatches(make, seed=3)
    resumed.load_state_dict({"step": 3})
    assert torch.equal(resumed.next_batch()["x"], run[3]) and not torch.equal(run[0], run[1])
    with pytest.raises(CheckpointError, match="step"):
        resumed.load_state_dict({"step": -1})


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="held_out_sizes=\\[20\\]"):
        SequenceTaskConfig(min_size=1, max_size=10, held_out_sizes=[20])
    with pytest.raises(ConfigError, match="to leave a size"):
        SequenceTaskConfig(min_size=2, max_size=3, held_out_sizes=[2, 3])
    with pytest.raises(ConfigError, match="task='shuffle'"):
        SequenceTaskConfig(task="shuffle")
    with pytest.raises(DataError, match="raise key_len"):
        retrieval_example(random.Random(0), 200, key_len=1, value_len=1)
