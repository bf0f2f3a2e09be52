"""Algorithmic sequence tasks: copy, reverse, sort, add and long-range key retrieval.

Each example is a (source, target) pair of strings over a tiny fixed alphabet, generated
from a seed, so a task needs no download and an experiment is exactly repeatable:

    copy       31415          -> 31415
    reverse    31415          -> 51413
    sort       31415          -> 11345
    add        314+159        -> 473
    retrieval  ab:12;cd:34;...|?ab -> 12      (distance = tokens between the pair and the query)

An example's *size* is its digit count (of each operand for `add`) or, for retrieval, the
distance. Lengths split into training and held-out sets: held-out sizes inside the trained
range test interpolation to lengths never seen. `SeededBatches` turns any
`generator -> batch` function into a resumable batch source.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Literal

import torch

from formers.config import Config, check
from formers.data.batches import StepCounted
from formers.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from formers.errors import DataError

DIGITS = "0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
ALPHABET = DIGITS + LETTERS + "+=:;|?."  # every character any task writes
TaskName = Literal["copy", "reverse", "sort", "add", "retrieval"]


@dataclasses.dataclass(kw_only=True)
class SequenceTaskConfig(Config):
    task: TaskName = "reverse"
    min_size: int = 1  # smallest size trained on (digits; retrieval: distance in tokens)
    max_size: int = 16
    held_out_sizes: list[int] = dataclasses.field(default_factory=list)  # never trained on; evaluated
    key_len: int = 2  # retrieval: letters per key
    value_len: int = 2  # retrieval: digits per value

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        check(self.min_size >= (0 if self.task == "retrieval" else 1), f"{name}.min_size", self.min_size,
              ">= 1 (>= 0 for retrieval)")
        check(self.max_size >= self.min_size, f"{name}.max_size", self.max_size, f">= min_size={self.min_size}")
        outside = [s for s in self.held_out_sizes if not self.min_size <= s <= self.max_size]
        check(not outside, f"{name}.held_out_sizes", self.held_out_sizes,
              f"sizes within [min_size={self.min_size}, max_size={self.max_size}]")
        check(len(self.train_sizes) > 0, f"{name}.held_out_sizes", self.held_out_sizes, "to leave a size to train on")
        check(1 <= self.key_len <= 3, f"{name}.key_len", self.key_len, "1, 2 or 3")
        check(self.value_len >= 1, f"{name}.value_len", self.value_len, ">= 1")

    @property
    def train_sizes(self) -> list[int]:
        return [s for s in range(self.min_size, self.max_size + 1) if s not in self.held_out_sizes]


def sequence_tokenizer() -> Tokenizer:
    """Character tokenizer over ALPHABET: ids 0, 1, 2 = <pad>, <eos>, <unk>, then the sorted characters."""
    return train_tokenizer(TokenizerConfig(kind="char"), ALPHABET)


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(n))


def _number(rng: random.Random, n: int) -> str:
    """An n-digit number without a leading zero (0 itself for n = 1 is allowed)."""
    return str(rng.randrange(10 ** (n - 1) if n > 1 else 0, 10**n))


def retrieval_example(
    rng: random.Random, distance: int, key_len: int = 2, value_len: int = 2, max_before: int = 2
) -> tuple[str, str]:
    """A key-value store, then `|?key`; the answer is the key's value.

    Exactly `distance` tokens lie between the end of the queried pair and the `|?` query:
    whole distractor pairs, then `.` filler for the remainder. Up to `max_before` distractor
    pairs precede the queried one, so its position in the store varies.
    """
    pair_len = key_len + 1 + value_len + 1  # "ab:12;"
    n_after = distance // pair_len
    n_pairs = rng.randint(0, max_before) + 1 + n_after
    if n_pairs > len(LETTERS) ** key_len:
        raise DataError(f"distance={distance} needs {n_pairs} distinct keys of {key_len} letters; raise key_len")
    keys: set[str] = set()
    while len(keys) < n_pairs:
        keys.add("".join(rng.choice(LETTERS) for _ in range(key_len)))
    pairs = [(k, _digits(rng, value_len)) for k in sorted(keys)]
    rng.shuffle(pairs)
    target_index = n_pairs - 1 - n_after
    store = "".join(f"{k}:{v};" for k, v in pairs) + "." * (distance - n_after * pair_len)
    key, value = pairs[target_index]
    return f"{store}|?{key}", value


def make_example(config: SequenceTaskConfig, size: int, rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair of the configured task at `size`."""
    if config.task == "retrieval":
        return retrieval_example(rng, size, config.key_len, config.value_len)
    if config.task == "add":
        a, b = _number(rng, size), _number(rng, size)
        return f"{a}+{b}", str(int(a) + int(b))
    source = _digits(rng, size)
    if config.task == "copy":
        return source, source
    if config.task == "reverse":
        return source, source[::-1]
    return source, "".join(sorted(source))  # sort


def sample_examples(
    config: SequenceTaskConfig, n: int, rng: random.Random, sizes: list[int] | None = None
) -> list[tuple[str, str]]:
    """`n` examples with sizes drawn uniformly from `sizes` (default: the training sizes)."""
    sizes = sizes or config.train_sizes
    return [make_example(config, rng.choice(sizes), rng) for _ in range(n)]


def held_out_examples(config: SequenceTaskConfig, per_size: int, seed: int) -> list[tuple[str, str]]:
    """A fixed evaluation set: `per_size` examples of every held-out size (all sizes if none is held out)."""
    rng = random.Random(f"held-out:{seed}")
    sizes = config.held_out_sizes or list(range(config.min_size, config.max_size + 1))
    return [make_example(config, size, rng) for size in sizes for _ in range(per_size)]


class SeededBatches(StepCounted):
    """A batch source whose batch at step n is `make_batch(generator seeded by (seed, n))`.

    The resume state is the step counter alone, as with `TokenWindows`: any transform
    (masking, corruption, task sampling) becomes exactly reproducible and resumable.
    """

    def __init__(self, make_batch: Callable[[torch.Generator], dict], seed: int) -> None:
        self.make_batch, self.seed, self.step = make_batch, seed, 0

    def next_batch(self) -> dict:
        batch = self.make_batch(self.step_generator())
        self.step += 1
        return batch


def python_rng(generator: torch.Generator) -> random.Random:
    """A `random.Random` drawn from a torch generator (string-building code reads better with it)."""
    return random.Random(int(torch.randint(2**62, (1,), generator=generator)))
