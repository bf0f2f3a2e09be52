"""Attention weights from any layer of any model built from formers blocks.

The fast SDPA kernel never materialises the weights, so `capture_attention` swaps each
attention module's kernel for a recording explicit-softmax kernel (tested equal to SDPA)
for the duration of a `with` block and puts the original back on exit, even on error:

    with capture_attention(model) as maps:
        model(input_ids)
    maps["stack.blocks.0.attention.sublayer"]  # (B, H, T_q, T_k), rows sum to 1

Nothing in the model changes: no flag, no subclass, no hook left behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from formers.errors import ConfigError
from formers.interpret.modality import head_update_norms
from formers.nn.attention import CrossAttention, SelfAttention
from formers.nn.kernels import ExplicitKernel, SDPAKernel, explicit_attention

DENSE = (SDPAKernel, ExplicitKernel)  # kernels whose weights the explicit softmax reproduces exactly


class Recorder:
    """The explicit-softmax kernel, keeping the last call's weights (B, H, T_q, T_k) and per-head outputs
    (B, H, T_q, D_h): the outputs tell how much each head writes (formers.interpret.modality)."""

    def __init__(self, clock: Iterator[int]) -> None:
        self.weights: torch.Tensor | None = None
        self.outputs: torch.Tensor | None = None
        self.clock, self.called_at = clock, -1  # module order is not run order (a captioner's tower runs first)

    def __call__(self, q, k, v, **kw) -> torch.Tensor:
        out, weights = explicit_attention(q, k, v, **kw)
        self.weights, self.outputs, self.called_at = weights.detach(), out.detach(), next(self.clock)
        return out


class AttentionMaps:
    """Recording kernels by module name; indexing gives the weights of the last forward."""

    def __init__(self, kernels: dict[str, Recorder], modules: dict[str, nn.Module] | None = None) -> None:
        self.kernels = kernels
        self.modules = modules or {}

    def names(self) -> list[str]:
        return list(self.kernels)

    def run_order(self) -> list[str]:
        """The names that recorded something, in the order their last calls ran."""
        called = [name for name, k in self.kernels.items() if k.weights is not None]
        return sorted(called, key=lambda name: self.kernels[name].called_at)

    def __getitem__(self, name: str) -> torch.Tensor:
        weights = self.kernels[name].weights
        if weights is None:
            raise ConfigError(f"attention {name!r} has recorded nothing yet; run the model inside the `with` block")
        return weights

    def update_norms(self, name: str) -> torch.Tensor:
        """|| o_h W_O^h || of the last forward, (B, H, T_q): what each head added to the residual stream."""
        self[name]  # refuses a module that recorded nothing
        return head_update_norms(self.kernels[name].outputs, self.modules[name].out.weight.detach())

    def stacked(self) -> torch.Tensor:
        """Every layer's weights, (L, B, H, T_q, T_k), in module order (self-attention layers of equal shape)."""
        return torch.stack([self[name] for name in self.kernels])


ATTENTION = (SelfAttention, CrossAttention)


def attention_modules(model: nn.Module, kinds: tuple[type, ...] = ATTENTION) -> dict[str, nn.Module]:
    """The attention modules of `model` of `kinds`, by name, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, kinds)}


@contextmanager
def capture_attention(model: nn.Module, kinds: tuple[type, ...] = ATTENTION) -> Iterator[AttentionMaps]:
    """Record the attention weights of every attention module of `kinds` (default: self and cross) while
    the `with` block runs; pass `(SelfAttention,)` to skip cross-attention."""
    modules = attention_modules(model, kinds)
    if not modules:
        raise ConfigError(f"{type(model).__name__} has no attention modules to record (looked for "
                          f"{[k.__name__ for k in kinds]})")
    sparse = {name: type(m.kernel).__name__ for name, m in modules.items() if not isinstance(m.kernel, DENSE)}
    if sparse:
        raise ConfigError(f"capture_attention records dense attention only; {sparse} use long-context kernels "
                          "whose weights are not a dense softmax. Build the model with kernel='sdpa' to inspect it")
    originals = {name: m.kernel for name, m in modules.items()}
    clock = itertools.count()
    recorders = {name: Recorder(clock) for name in modules}
    try:
        for name, m in modules.items():
            m.kernel = recorders[name]
        yield AttentionMaps(recorders, modules)
    finally:
        for name, m in modules.items():
            m.kernel = originals[name]
