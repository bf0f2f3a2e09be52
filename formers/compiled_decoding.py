"""Decoding steps through torch.compile: what `generate(..., compile=True)` runs instead of the eager model."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from formers.nn.embeddings import check_token_ids

_COMPILED: dict[Callable, Callable] = {}  # a model class's forward -> its compiled version


def compiled_forward(model: nn.Module, input_ids: torch.Tensor) -> Callable:
    """`model`'s forward through torch.compile: compiled once per model class, the model passed as an argument.

    A decoding step at batch 1 runs ~800 small operators (norms, casts, adds, views) around a few
    products; compiled, they fuse into a few dozen C++ kernels called from C++ (`cpp_wrapper`), which
    is what is left to win once int8 weights have cut the bytes (benchmarks/README.md). `dynamic=True`
    compiles one graph for the prompt and one for every later step, whatever the lengths: the cache
    grows without recompiling. The first call compiles (25-200 s on one core of our CPU; torch
    caches the result on disk for later processes). The compiled function is kept here, not on the
    model, so models stay plain modules (copyable, picklable) and same-shaped models share graphs.
    Under compile the embedding's range check is skipped (it would break the graph), so the prompt's
    ids are checked here; generated ids come from the vocabulary by construction.
    """
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None:
        check_token_ids(input_ids, vocab)
    forward = type(model).forward
    if forward not in _COMPILED:
        # Each weight format and model shape adds ~4 graphs (prompt and step, one row and several), and torch
        # falls back to eager, with only a warning, past 8: allow a process a few models.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED[forward] = torch.compile(forward, dynamic=True, options={"cpp_wrapper": True})
    return functools.partial(_COMPILED[forward], model)
