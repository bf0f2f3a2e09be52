"""Locked-tower contrastive tuning (LiT, Zhai et al. 2022, "LiT: Zero-Shot Transfer with Locked-image
text Tuning"): one tower of a dual encoder comes pretrained and stays locked; the other tower and both
projections learn to map into the space the locked tower already defines.

LiT locks a pretrained image tower and trains the text tower. The offline counterpart here is the
mirror image: the only real pretrained encoder on hand is the sentence encoder all-MiniLM-L6-v2, so it
becomes a locked *text* tower and the image tower learns to meet it (the paper's "Lu" setting, locked
and unlocked, with the roles of the towers swapped; locking a pretrained image tower, the paper's own
setting, is `lock=["image"]` with an image checkpoint in `sources`).

    model = with_pretrained_towers(config, {"text": "all-MiniLM-L6-v2"}, lock=["text"])

A locked tower runs with dropout off (its config is rebuilt with dropout 0: a frozen encoder should
give one embedding per input, as at inference), gets no gradient and holds no optimizer state; with
no parameter needing a gradient, autograd records nothing inside it either. Being a fixed function, a
locked text tower is read through a cache of its pooled vector per distinct text (`TextCache`; LiT,
section 5, precomputes locked embeddings the same way): captions made from a few templates and class
names then cost the 6-layer MiniLM once each instead of once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from formers.adapt.freeze import freeze
from formers.errors import ConfigError
from formers.interop.pretrained import resolve_pretrained
from formers.io import load
from formers.models.clip import CLIP, CLIPConfig
from formers.registry import build_model

Tower = Literal["image", "text"]


def _without_dropout(config):
    changes = {name: 0.0 for name in ("dropout", "attn_dropout") if hasattr(config, name)}
    return config.replace(**changes)


def with_pretrained_towers(
    config: CLIPConfig, sources: dict[Tower, str | Path], lock: Sequence[Tower] = ()
) -> CLIP:
    """A CLIP built from `config` whose towers named in `sources` are the pretrained models there (formers
    checkpoints, Hugging Face folders, or names `resolve_pretrained` knows); each one's config replaces
    config.<tower>. Towers in `lock` are frozen and run without dropout; each must come pretrained."""
    unsourced = [t for t in lock if t not in sources]
    if unsourced:
        raise ConfigError(f"locked towers {unsourced} have no pretrained weights: a locked random tower would "
                          "never learn; give each locked tower a pretrained source")
    pretrained = {tower: load(resolve_pretrained(source)) for tower, source in sources.items()}
    changes = {t: _without_dropout(m.config) if t in lock else m.config for t, m in pretrained.items()}
    model = build_model(config.replace(**changes))
    for tower, source_model in pretrained.items():
        tower_module(model, tower).load_state_dict(source_model.state_dict())
    for tower in lock:
        freeze(tower_module(model, tower))
    if "text" in lock:
        model.read_text = TextCache(model.read_text)
    return model


def tower_module(model: CLIP, tower: Tower) -> nn.Module:
    return model.image_tower if tower == "image" else model.text_tower


class TextCache:
    """Memoises a locked text tower's pooled vector (D_t,) per distinct text, keyed by its real token ids.

    A vector is stored in fp32 as first computed (under bf16 autocast, its bf16 value), so a text reads
    the same vector every time after; rows past `max_rows` are computed and not stored."""

    def __init__(self, read, max_rows: int = 100_000) -> None:
        self.read, self.max_rows = read, max_rows
        self.table: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        real = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
        keys = [tuple(row[keep].tolist()) for row, keep in zip(input_ids, real, strict=True)]
        fresh: dict[tuple[int, ...], int] = {}  # each unseen text once: key -> its first row
        for i, key in enumerate(keys):
            if key not in self.table:
                fresh.setdefault(key, i)
        computed = {}
        if fresh:
            rows = torch.tensor(list(fresh.values()), device=input_ids.device)
            mask = attention_mask[rows] if attention_mask is not None else None
            with torch.no_grad():
                vectors = self.read(input_ids[rows], mask).float()  # (n_fresh, D_t)
            computed = dict(zip(fresh, vectors, strict=True))
            room = max(0, self.max_rows - len(self.table))
            self.table.update(list(computed.items())[:room])
        return torch.stack([self.table[k] if k in self.table else computed[k] for k in keys])  # (B, D_t)
