"""LoRA (Hu et al. 2021): learn a low-rank update W + (alpha / r) B A of frozen linear layers.

`apply_lora(model, targets=("qkv:q,v",), rank=8, alpha=16)` swaps the matching nn.Linear layers
in place for `LoRALinear` and freezes every other parameter of `model`; B starts at zero, so the
model's outputs are unchanged until training moves it. `merge_lora` folds the update into the
weights for inference (no extra cost), `unmerge_lora` restores the original weights bit for bit,
`strip_lora` leaves plain nn.Linear layers (a normal checkpoint), and `save_lora` / `load_lora`
write and read the adapters alone (a few hundred kB of safetensors instead of the whole model).

Fused projections. Our attention computes q, k and v with ONE linear layer, `qkv`, whose output
rows are [q | k | v] (and cross-attention's `kv` is [k | v]). A target picks either:

- "qkv": one adapter on the fused (3 H Dh, D) matrix. Its update B A has rank r in total: q, k
  and v share the input subspace A (r x D) and have separate output maps (the rows of B). That
  is three adapters with a tied A, r (D + 3 H Dh) parameters.
- "qkv:q,v": separate adapters on the q and v slices, each with its own A and B, exactly Hu et
  al.'s setup (they adapt W_q and W_v) and what peft's target_modules=["query", "value"] does on
  a BERT with separate projections; the k slice is left as it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from formers.adapt.freeze import freeze
from formers.config import check
from formers.errors import CheckpointError, ConfigError, ShapeMismatchError
from formers.storage import read_metadata, read_tensors, save_tensors

# Row layout of our fused projections (formers/nn/attention.py): equal slices, in this order.
FUSED_PARTS: dict[str, tuple[str, ...]] = {"qkv": ("q", "k", "v"), "kv": ("k", "v")}


class LoRALinear(nn.Module):
    """y = base(x) + (alpha / r) * B A dropout(x), with A and B per adapted slice of the output rows.

    base: the frozen nn.Linear (out, in). The output rows are cut into `n_slices` equal slices and
    `slices` lists the adapted ones; A (S, r, in), B (S, out / n_slices, r) for the S adapted slices.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0,
                 n_slices: int = 1, slices: Sequence[int] = (0,)) -> None:
        super().__init__()
        out_features, in_features = base.weight.shape
        if out_features % n_slices:
            raise ShapeMismatchError(f"a linear layer with {out_features} outputs cannot be cut into {n_slices} "
                                     "equal slices for LoRA")
        self.base = base
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.n_slices, self.slices = n_slices, tuple(slices)
        self.dropout = nn.Dropout(dropout)
        s, slice_out = len(self.slices), out_features // n_slices
        self.lora_A = nn.Parameter(torch.empty(s, rank, in_features, dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(s, slice_out, rank, dtype=base.weight.dtype))
        for a in self.lora_A:  # nn.Linear's own init for A (as peft); B = 0 keeps the output unchanged
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        self.register_buffer("slice_index", torch.tensor(self.slices), persistent=False)
        self.merged = False
        self._original: torch.Tensor | None = None

    def delta_weight(self) -> torch.Tensor:
        """The update (alpha / r) B A as a full (out, in) matrix, zero on slices without an adapter."""
        out_features, in_features = self.base.weight.shape
        per_slice = torch.bmm(self.lora_B, self.lora_A)  # (S, out / n, in)
        full = per_slice.new_zeros(self.n_slices, out_features // self.n_slices, in_features)
        full = full.index_copy(0, self.slice_index, per_slice)  # (n, out / n, in)
        return self.scaling * full.reshape(out_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:  # the update is inside base.weight already
            return y
        # Low-rank path: r (in + out) multiply-adds per token instead of in * out for B A materialised.
        z = torch.einsum("...i,sri->...sr", self.dropout(x), self.lora_A)  # (..., S, r)
        u = torch.einsum("...sr,sor->...so", z, self.lora_B)  # (..., S, out / n)
        delta = u.new_zeros(*u.shape[:-2], self.n_slices, u.shape[-1]).index_copy(-2, self.slice_index, u)
        return y + self.scaling * delta.flatten(-2)  # (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self._original = self.base.weight.detach().clone()  # kept so that unmerge is exact, not W + d - d
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight.copy_(self._original)
            self._original, self.merged = None, False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, slices={self.slices} of {self.n_slices}"


def _parse_target(target: str) -> tuple[str, int, tuple[int, ...]]:
    """"qkv:q,v" -> ("qkv", 3, (0, 2)); "out" -> ("out", 1, (0,))."""
    name, _, parts = target.partition(":")
    if not parts:
        return name, 1, (0,)
    layout = FUSED_PARTS.get(name.rsplit(".", 1)[-1])
    if layout is None:
        raise ConfigError(f"LoRA target {target!r}: only fused layers {sorted(FUSED_PARTS)} have parts to pick; "
                          f"write {name!r} to adapt the whole layer")
    picked = [p.strip() for p in parts.split(",")]
    unknown = [p for p in picked if p not in layout]
    if unknown or not picked:
        raise ConfigError(f"LoRA target {target!r}: parts {unknown or picked} are not in {name}'s layout {layout}")
    return name, len(layout), tuple(sorted(layout.index(p) for p in set(picked)))


def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)


def apply_lora(model: nn.Module, targets: Sequence[str] = ("qkv:q,v",), rank: int = 8, alpha: float = 16.0,
               dropout: float = 0.0) -> list[str]:
    """Swap every nn.Linear whose name ends in a target for a LoRALinear; freeze all else in `model`.

    targets: layer names or dotted suffixes ("qkv", "out", "feed_forward.sublayer.up", "blocks.5.attention..."),
    fused ones optionally with parts ("qkv:q,v"). Returns the adapted layers' names. Apply it to the
    trunk (`apply_lora(head.trunk, ...)`) to keep a new task head trainable.
    """
    check(rank > 0, "apply_lora.rank", rank, "a positive int")
    check(alpha > 0, "apply_lora.alpha", alpha, "a positive float")
    check(0.0 <= dropout < 1.0, "apply_lora.dropout", dropout, "a value in [0, 1)")
    parsed = [_parse_target(t) for t in targets]
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    freeze(model)
    adapted = []
    for target, (name, n_slices, slices) in zip(targets, parsed, strict=True):
        hits = [n for n in linears if _matches(n, name)]
        if not hits:
            examples = sorted({n.rsplit(".", 1)[-1] for n in linears})
            raise ConfigError(f"LoRA target {target!r} matches no nn.Linear in {type(model).__name__}; "
                              f"linear layers end in {examples}")
        for hit in hits:
            parent_name, _, child = hit.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, child, LoRALinear(linears[hit], rank, alpha, dropout, n_slices, slices))
            adapted.append(hit)
    return adapted


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> None:
    """Fold every adapter into its base weight: the same outputs at a plain linear layer's cost."""
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Restore the original base weights exactly (the pre-merge copy), adapters active again."""
    for layer in lora_layers(model).values():
        layer.unmerge()


def strip_lora(model: nn.Module) -> nn.Module:
    """Merge and replace each LoRALinear by its base nn.Linear: a model that saves as the original family."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base)
    return model


def save_lora(model: nn.Module, path: str | Path) -> None:
    """The adapters alone (lora_A, lora_B of each layer) in safetensors, their settings in its metadata."""
    layers = lora_layers(model)
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no LoRA layers to save; call apply_lora first")
    tensors, settings = {}, {}
    for name, layer in layers.items():
        tensors[f"{name}.lora_A"] = layer.lora_A.detach().contiguous()
        tensors[f"{name}.lora_B"] = layer.lora_B.detach().contiguous()
        settings[name] = {"rank": layer.rank, "alpha": layer.alpha, "dropout": layer.dropout.p,
                          "n_slices": layer.n_slices, "slices": list(layer.slices)}
    save_tensors(Path(path), tensors, metadata={"format": "pt", "lora": json.dumps(settings)})


def load_lora(model: nn.Module, path: str | Path) -> list[str]:
    """Put saved adapters into `model` (the same base model), adding LoRA layers where missing."""
    path = Path(path)
    try:
        settings = json.loads(read_metadata(path)["lora"])
    except (CheckpointError, KeyError, ValueError) as e:  # unreadable, or a safetensors file without "lora"
        raise CheckpointError(f"{path} is not a LoRA adapter file written by save_lora ({e})") from None
    tensors = read_tensors(path)
    present = lora_layers(model)
    for name, s in settings.items():
        if name not in present:
            try:
                base = model.get_submodule(name)
            except AttributeError:
                raise ShapeMismatchError(f"{path} adapts layer {name!r}, which {type(model).__name__} does not "
                                         "have; load adapters into the model they were trained on") from None
            parent_name, _, child = name.rpartition(".")
            layer = LoRALinear(base, s["rank"], s["alpha"], s["dropout"], s["n_slices"], s["slices"])
            setattr(model.get_submodule(parent_name), child, layer)
            present[name] = layer
        layer = present[name]
        for key in ("lora_A", "lora_B"):
            saved, own = tensors[f"{name}.{key}"], getattr(layer, key)
            if saved.shape != own.shape:
                raise ShapeMismatchError(f"{path}: {name}.{key} is {tuple(saved.shape)} but the model's is "
                                         f"{tuple(own.shape)}; the adapters were trained with other LoRA settings")
            with torch.no_grad():
                own.copy_(saved)
    return sorted(settings)
