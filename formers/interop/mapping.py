"""How a Hugging Face checkpoint's tensors become ours and back: one `Rule` per tensor of ours.

A rule names our tensor and the checkpoint tensor(s) it is made of. Several checkpoint
tensors are concatenated along dim 0 (our fused q|k|v and k|v projections); GPT-2's Conv1D
stores (in, out) and is transposed; BART's final_logits_bias is a (1, V) row. Each family's
table of rules (gpt2.py, bert.py, t5.py, bart.py) is the only place its checkpoint names live.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from formers.config import Config
from formers.errors import CheckpointError, ConfigError, ShapeMismatchError
from formers.io import unique_state_dict

Layout = Literal["same", "conv1d", "row"]

# transformers activation names -> ours, and back
ACTIVATIONS_IN = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
                  "silu": "silu", "swish": "silu", "quick_gelu": "quick_gelu"}
ACTIVATIONS_OUT = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu", "quick_gelu": "quick_gelu"}


def activation_from_hf(name: str, where: str) -> str:
    if name not in ACTIVATIONS_IN:
        raise CheckpointError(f"config.json {where}={name!r} is not supported; formers reads {sorted(ACTIVATIONS_IN)}")
    return ACTIVATIONS_IN[name]


@dataclasses.dataclass(frozen=True)
class Rule:
    ours: str
    theirs: tuple[str, ...]  # concatenated along dim 0 when there are several
    layout: Layout = "same"
    optional: bool = False  # a head the checkpoint may lack (a base model): it keeps its initial values
    lead: int = 0  # ours has this many leading size-1 dims theirs lacks: (1, N, D) vs (N, D), (1, 1, D) vs (D,)

    def to_ours(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        t = torch.cat(tensors, dim=0) if len(tensors) > 1 else tensors[0]
        if self.layout == "conv1d":
            t = t.t()  # (in, out) -> (out, in)
        elif self.layout == "row":
            t = t.reshape(-1)  # (1, N) -> (N,)
        return t.reshape((1,) * self.lead + tuple(t.shape)).contiguous()

    def to_theirs(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        t = t.reshape(t.shape[self.lead:])
        if self.layout == "conv1d":
            t = t.t()
        elif self.layout == "row":
            t = t[None]
        # clone: safetensors refuses tensors that share storage, as chunks of one tensor do
        parts = t.chunk(len(self.theirs)) if len(self.theirs) > 1 else (t,)
        return {k: part.clone().contiguous() for k, part in zip(self.theirs, parts, strict=True)}

    def their_shapes(self, shape: torch.Size) -> dict[str, tuple[int, ...]]:
        dims = list(shape)[self.lead:]
        if self.layout == "conv1d":
            dims = dims[::-1]
        elif self.layout == "row":
            dims = [1, *dims]
        if len(self.theirs) > 1:  # fused: each part is a slice of dim 0 (a 0-dim scalar is never fused)
            dims[0] //= len(self.theirs)
        return {k: tuple(dims) for k in self.theirs}


def module(ours: str, *theirs: str, bias: bool = True, layout: Layout = "same", optional: bool = False) -> list[Rule]:
    """Rules for a module's weight (and bias): `module("x.qkv", "q", "k", "v")` fuses three linears."""
    rules = [Rule(f"{ours}.weight", tuple(f"{t}.weight" for t in theirs), layout, optional)]
    if bias:  # biases are 1-D: Conv1D's needs no transpose
        rules.append(Rule(f"{ours}.bias", tuple(f"{t}.bias" for t in theirs), "same", optional))
    return rules


@dataclasses.dataclass(frozen=True)
class HFFamily:
    """One Hugging Face model type: its config translation both ways and its table of rules."""

    model_type: str  # config.json "model_type"
    family: str  # our registered family
    architecture: str  # the transformers class an export names in "architectures"
    prefix: str  # the base model's prefix inside the head model's keys ("bert.", "model.", ...)
    config_from_hf: Callable[[dict[str, Any], dict[str, torch.Tensor]], Config]
    config_to_hf: Callable[[Config], dict[str, Any]]
    rules: Callable[[Config], list[Rule]]
    ignored: Callable[[Config], list[str]]  # regexes of checkpoint keys read past (buffers, tied copies)
    # (copy, kept): checkpoint keys that the reference ties but a checkpoint may hold apart; formers keeps one
    # tensor, so the two must be equal
    copies: Callable[[Config], list[tuple[str, str]]] = lambda config: []


def require(config: Config, target: str, **needed: Any) -> None:
    """Refuse to export a config whose choices the target cannot express; `needed` maps each field to the
    value the target needs, or to a tuple of the values it accepts."""
    name = type(config).__name__

    def fits(value: Any, need: Any) -> bool:
        return value in need if isinstance(need, tuple) else value == need

    bad = [f"{name}.{k}={getattr(config, k)!r} (needs {v!r})" for k, v in needed.items()
           if not fits(getattr(config, k), v)]
    if bad:
        raise ConfigError(f"no Hugging Face {target} counterpart for {', '.join(bad)}; "
                          "only models built with the reference architecture's choices can be exported")


def check_copies(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]], source: str) -> None:
    """Refuse a checkpoint whose tied copies were trained apart: formers would silently drop one of them."""
    for copy, kept in pairs:
        if copy in state and kept in state and not torch.equal(state[copy], state[kept]):
            raise CheckpointError(
                f"{source}: {copy} differs from {kept}; formers keeps one tensor for both (the reference ties "
                "them by default), so a checkpoint that trained them apart cannot be loaded without changing it"
            )


def head_is_tied(state: dict[str, torch.Tensor], head: str, embedding: str) -> bool:
    """A checkpoint ties its output head when the head is absent or equal to the embedding."""
    return head not in state or (embedding in state and torch.equal(state[head], state[embedding]))


def to_checkpoint(model: nn.Module, rules: list[Rule]) -> dict[str, torch.Tensor]:
    """Our weights under the checkpoint's names."""
    own = unique_state_dict(model)
    unmapped = sorted(set(own) - {r.ours for r in rules})
    if unmapped:
        raise ConfigError(f"no Hugging Face name for {unmapped}: this model has parts the export cannot express")
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        out.update(rule.to_theirs(own[rule.ours]))
    return out


def from_checkpoint(
    state: dict[str, torch.Tensor], rules: list[Rule], model: nn.Module, ignored: list[str], source: str
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Checkpoint tensors -> our state dict; also returns the optional heads the checkpoint lacks.

    Raises ShapeMismatchError listing every missing, unexpected and mismatched checkpoint key.
    """
    own = model.state_dict()
    expected: dict[str, tuple[int, ...]] = {}
    for rule in rules:
        expected.update(rule.their_shapes(own[rule.ours].shape))
    absent = [r for r in rules if r.optional and not any(k in state for k in r.theirs)]
    absent_keys = {k for r in absent for k in r.theirs}
    missing = sorted(k for k in expected if k not in state and k not in absent_keys)
    unexpected = sorted(k for k in state if k not in expected and not any(re.fullmatch(p, k) for p in ignored))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {shape}"
        for k, shape in expected.items() if k in state and tuple(state[k].shape) != shape
    )
    if missing or unexpected or mismatched:
        raise ShapeMismatchError(
            f"weights in {source} do not fit the {type(model).__name__} its config.json describes: missing {missing}, "
            f"unexpected {unexpected}, mismatched {mismatched}; check that config.json and the weights belong "
            "to the same model"
        )
    converted = {r.ours: r.to_ours([state[k] for k in r.theirs]) for r in rules if r not in absent}
    absent = [r for r in absent if r.ours not in converted]  # another name for the same tensor may have been read
    for rule in absent:
        converted[rule.ours] = own[rule.ours]
    return converted, sorted(r.ours for r in absent)
