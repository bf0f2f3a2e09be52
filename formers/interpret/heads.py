"""Head importance by ablation: mask one head at a time and measure how much the loss rises.

Michel et al. 2019, "Are Sixteen Heads Really Better than One?": masking a head means multiplying its
output by 0 before the output projection. Here that is a kernel wrapper swapped in for the duration of
a `with` block, as `capture_attention` does, so the model itself never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from formers.errors import ConfigError
from formers.interpret.attention_maps import ATTENTION, attention_modules


class MaskedHeads:
    """A kernel whose listed heads output zeros; the others are the wrapped kernel's, unchanged."""

    def __init__(self, kernel, heads: Sequence[int], n_heads: int) -> None:
        self.kernel = kernel
        self.keep = torch.ones(n_heads, 1, 1)
        self.keep[list(heads)] = 0.0

    def __call__(self, q, k, v, **kw) -> torch.Tensor:
        out = self.kernel(q, k, v, **kw)  # (B, H, T_q, D_h)
        return out * self.keep.to(out)


@contextmanager
def mask_heads(model: nn.Module, heads: Mapping[str, Sequence[int]]) -> Iterator[None]:
    """Silence `heads[name]` (head indices) of each named attention module while the block runs."""
    modules = attention_modules(model, ATTENTION)
    for name, indices in heads.items():
        if name not in modules:
            raise ConfigError(f"{name!r} is not an attention module of {type(model).__name__}; "
                              f"expected one of {list(modules)[:6]}...")
        bad = [h for h in indices if not 0 <= h < modules[name].n_heads]
        if bad:
            raise ConfigError(f"heads {bad} of {name!r} do not exist; it has {modules[name].n_heads}")
    originals = {name: modules[name].kernel for name in heads}
    try:
        for name, indices in heads.items():
            modules[name].kernel = MaskedHeads(originals[name], indices, modules[name].n_heads)
        yield
    finally:
        for name, kernel in originals.items():
            modules[name].kernel = kernel


@torch.no_grad()
def head_importance(model: nn.Module, loss_fn: Callable[[nn.Module], torch.Tensor],
                    kinds: tuple[type, ...] = ATTENTION) -> dict[str, torch.Tensor]:
    """loss(model with head h of module m masked) - loss(model), as {module name: (H,)}; a large rise marks a
    head the model leans on. `loss_fn(model)` returns a scalar on fixed data (run the model in eval mode, so
    dropout does not blur the differences). Costs one forward per head."""
    base = float(loss_fn(model))
    scores = {}
    for name, module in attention_modules(model, kinds).items():
        rises = []
        for h in range(module.n_heads):
            with mask_heads(model, {name: [h]}):
                rises.append(float(loss_fn(model)) - base)
        scores[name] = torch.tensor(rises)
    return scores
