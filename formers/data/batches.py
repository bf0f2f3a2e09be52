"""Batches of token windows for language modelling, resumable by a step counter.

The Trainer knows only the batch-source protocol: `next_batch() -> dict[str, Tensor]`,
`state_dict() -> dict` (JSON-serialisable) and `load_state_dict(d)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from formers.errors import CheckpointError, DataError


class StepCounted:
    """A batch source whose whole resume state is its step counter: its batch at step n is a pure
    function of (seed, n), drawn from `step_generator()`."""

    seed: int
    step: int = 0

    def step_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(step_seed(self.seed, self.step))

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        step = state.get("step") if isinstance(state, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise CheckpointError(f"batch source state {state!r} needs a non-negative integer 'step'")
        self.step = step


class TokenWindows(StepCounted):
    """Random windows of `seq_len + 1` tokens from one long stream, as (input_ids, labels).

    The batch at step n comes from a generator seeded by a hash of (seed, n), not from a
    generator carried across steps: the whole resume state is the step counter, and it is the
    same on every machine. In a distributed run every rank draws the same global batch of
    `world_size * batch_size` windows and keeps its own slice, so N processes with
    `batch_size` B see exactly the data of one process with `batch_size` N*B.
    """

    def __init__(
        self, tokens: Tensor, *, seq_len: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        _check_stream(tokens, seq_len)
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size} must be at least 1")
        if not 0 <= rank < world_size:
            raise DataError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.tokens, self.seq_len, self.batch_size = tokens, seq_len, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.step = 0
        self._offsets = torch.arange(seq_len + 1)  # (T+1,)

    def next_batch(self) -> dict[str, Tensor]:
        g = self.step_generator()
        n_starts = len(self.tokens) - self.seq_len  # last start leaves room for seq_len + 1 tokens
        starts = torch.randint(n_starts, (self.world_size * self.batch_size,), generator=g)  # (N*B,) global batch
        starts = starts[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # (B,) this rank's slice
        windows = self.tokens[starts[:, None] + self._offsets]  # (B, T+1)
        self.step += 1
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}  # (B, T) each


def eval_windows(
    tokens: Tensor, *, seq_len: int, batch_size: int, max_batches: int | None = None
) -> list[dict[str, Tensor]]:
    """Contiguous windows from the start of `tokens`, in batches; the last batch may be smaller.

    Window i holds inputs tokens[i*T : (i+1)*T] and labels shifted by one, so every token
    after the first is predicted exactly once (up to a tail shorter than one window).
    """
    _check_stream(tokens, seq_len)
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size} must be at least 1")
    n_windows = (len(tokens) - 1) // seq_len
    if max_batches is not None:
        if max_batches < 0:
            raise DataError(f"max_batches={max_batches} must be non-negative (or None for all)")
        n_windows = min(n_windows, max_batches * batch_size)
    starts = torch.arange(n_windows) * seq_len  # (N,)
    windows = tokens[starts[:, None] + torch.arange(seq_len + 1)]  # (N, T+1)
    return [{"input_ids": w[:, :-1], "labels": w[:, 1:]} for w in windows.split(batch_size)]  # (b, T) each


def _check_stream(tokens: Tensor, seq_len: int) -> None:
    if not isinstance(tokens, Tensor):
        raise DataError(f"token stream must be a 1-D torch.long tensor, got {type(tokens).__name__}")
    if tokens.dim() != 1 or tokens.dtype != torch.long:
        raise DataError(f"token stream must be a 1-D torch.long tensor, got {tokens.dtype} {tuple(tokens.shape)}")
    if seq_len < 1:
        raise DataError(f"seq_len={seq_len} must be at least 1")
    if len(tokens) < seq_len + 1:
        raise DataError(
            f"token stream has {len(tokens)} tokens but seq_len={seq_len} needs at least {seq_len + 1} "
            "(a window plus its next-token label); use more text or a shorter seq_len"
        )


def pad_sequences(sequences: Sequence[Tensor], pad_value: int) -> Tensor:
    """1-D tensors of different lengths -> (B, T_max), padded on the right."""
    if not sequences or any(s.dim() != 1 for s in sequences):
        raise DataError("pad_sequences takes a non-empty list of 1-D tensors")
    out = torch.full((len(sequences), max(len(s) for s in sequences)), pad_value, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out


def padded(sequences: Sequence[Sequence[int]], pad_id: int = 0, prefix: str = "") -> dict[str, Tensor]:
    """Id lists -> {prefix+"input_ids" (B, T), prefix+"attention_mask" (B, T) 1 = real}, right-padded to the longest."""
    if not sequences:  # an empty batch: no rows, no columns
        empty = torch.zeros((0, 0), dtype=torch.long)
        return {f"{prefix}input_ids": empty, f"{prefix}attention_mask": empty.clone()}
    tensors = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
    ids = pad_sequences(tensors, pad_id)
    lengths = torch.tensor([len(s) for s in tensors])
    mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).long()  # (B, T)
    return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask}


def step_seed(*values: int) -> int:
    """A seed from integers, stable across processes and Python versions (unlike `hash`)."""
    digest = hashlib.sha256(",".join(str(v) for v in values).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # 63 bits: manual_seed takes any int64
