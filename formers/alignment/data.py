"""Prompt/response and preference records: validation, encoding, batches.

Records are plain dicts: {"prompt", "response"} for supervised fine-tuning and
{"prompt", "chosen", "rejected"} for preferences. Each (prompt, response) becomes one
sequence `prompt + response + <eos>`, padded on the right, whose labels are the next
tokens of the response only (IGNORE_INDEX on prompt and padding): SFT, DPO and the
reward model all read the same layout. A batch of pairs stacks the chosen sequences
(rows 0..B-1) above the rejected ones (rows B..2B-1), so one forward pass scores both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from formers.data.batches import StepCounted
from formers.errors import DataError, SequenceTooLongError
from formers.objectives.causal_lm import IGNORE_INDEX

Example = tuple[list[int], ...]  # (prompt ids, response ids + eos[, rejected ids + eos])
SFT_FIELDS = ("prompt", "response")
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")


class RecordError(DataError):
    """A record is not a mapping, lacks a field or has an empty one; `.index` is its position in the data."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"record {index}: {message}")
        self.index = index


class RecordTooLongError(RecordError, SequenceTooLongError):
    """A record's prompt (plus its response) does not fit in the model's context."""


def _field_ids(record: Any, index: int, fields: Sequence[str], tokenizer) -> dict[str, list[int]]:
    if not isinstance(record, Mapping):
        raise RecordError(index, f"is a {type(record).__name__}, expected a mapping with fields {list(fields)}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise RecordError(index, f"missing field(s) {missing}; every record needs {list(fields)}")
    ids = {}
    for field in fields:
        value = record[field]
        if not isinstance(value, str):
            raise RecordError(index, f"field {field!r} is a {type(value).__name__}, expected a string")
        ids[field] = tokenizer.encode(value, add_special_tokens=False)  # fields are joined: no specials between
        if not ids[field]:
            raise RecordError(index, f"field {field!r} is empty; every prompt and response needs at least one token")
    return ids


def encode_records(
    records: Sequence[Mapping[str, str]], fields: Sequence[str], tokenizer, max_seq_len: int
) -> list[Example]:
    """Validate and tokenize records into (prompt ids, response ids + eos, ...) tuples, one per record.

    Raises RecordError (missing or empty field) or RecordTooLongError (prompt plus a response and
    its <eos> longer than `max_seq_len`), naming the record's index.
    """
    if not records:
        raise DataError(f"no records given; expected a non-empty list of mappings with fields {list(fields)}")
    eos = tokenizer.eos_id
    out = []
    for index, record in enumerate(records):
        ids = _field_ids(record, index, fields, tokenizer)
        prompt = ids[fields[0]]
        responses = [ids[f] + [eos] for f in fields[1:]]
        for field, response in zip(fields[1:], responses, strict=True):
            if len(prompt) + len(response) > max_seq_len:
                raise RecordTooLongError(
                    index, f"prompt ({len(prompt)} tokens) + {field} ({len(response)} tokens with <eos>) is longer "
                    f"than the context max_seq_len={max_seq_len}; shorten the record or raise model.max_seq_len")
        out.append((prompt, *responses))
    return out


def encode_prompts(prompts: Sequence[str], tokenizer, max_seq_len: int, max_new_tokens: int) -> list[list[int]]:
    """Tokenize rollout prompts, refusing empty ones and those with no room for `max_new_tokens`."""
    out = []
    for index, prompt in enumerate(prompts):
        ids = _field_ids({"prompt": prompt}, index, ("prompt",), tokenizer)["prompt"]
        if len(ids) + max_new_tokens > max_seq_len:
            raise RecordTooLongError(
                index, f"prompt ({len(ids)} tokens) + max_new_tokens={max_new_tokens} is longer than the context "
                f"max_seq_len={max_seq_len}; shorten the prompt, lower max_new_tokens or raise model.max_seq_len")
        out.append(ids)
    return out


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """(prompt, response) pairs -> {"input_ids", "attention_mask", "labels"} (B, T), padded on the right.

    labels[t] = input_ids[t + 1] where that token belongs to the response, else IGNORE_INDEX.
    """
    seqs = [prompt + response for prompt, response in examples]
    t = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), t), dtype=torch.long)
    labels = torch.full((len(seqs), t), IGNORE_INDEX, dtype=torch.long)
    for i, ((prompt, response), seq) in enumerate(zip(examples, seqs, strict=True)):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, len(prompt) - 1 : len(seq) - 1] = torch.tensor(response)  # the token before each response token
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate_pairs(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """(prompt, chosen, rejected) triples -> one batch of 2B rows: chosen first, then rejected."""
    return collate([(p, c) for p, c, _ in examples] + [(p, r) for p, _, r in examples], pad_id)


class RecordBatches(StepCounted):
    """Random batches of encoded records, resumable by a step counter (like TokenWindows).

    The batch at step n is drawn with a generator seeded by (seed, n): the resume state is the step alone.
    """

    def __init__(
        self, examples: Sequence[Example], collate_fn: Callable[[Sequence[Example]], dict], *, batch_size: int,
        seed: int = 0,
    ) -> None:
        if not examples:
            raise DataError("RecordBatches needs at least one encoded record")
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size} must be at least 1")
        self.examples, self.collate_fn, self.batch_size, self.seed = list(examples), collate_fn, batch_size, seed
        self.step = 0

    def next_batch(self) -> dict[str, torch.Tensor]:
        g = self.step_generator()
        picks = torch.randint(len(self.examples), (self.batch_size,), generator=g).tolist()
        self.step += 1
        return self.collate_fn([self.examples[i] for i in picks])


def fixed_batches(
    examples: Sequence[Example], collate_fn: Callable[[Sequence[Example]], dict], batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Every example once, in order, in batches (validation)."""
    return [collate_fn(examples[i : i + batch_size]) for i in range(0, len(examples), batch_size)]
