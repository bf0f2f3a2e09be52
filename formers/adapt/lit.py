"""Locked-tower contrastive tuning (LiT, Zhai et al. 2022, "LiT: Zero-Shot Transfer with Locked-image
text Tuning"): one tower of a dual encoder comes pretrained and stays locked; the other tower and both
projections learn to map into the space the locked tower already defines.

LiT locks a pretrained image tower and trains the text tower. The offline counterpart here is the
mirror image: the only real pretrained encoder on hand is the sentence encoder all-MiniLM-L6-v2, so it
becomes a locked *text* tower and the image tower learns to meet it (the paper's "Lu" setting with
the roles of the towers swapped; its "LU" setting, locked image, works the same with `tower="image"`).

    model = with_pretrained_tower(config, "text", "all-MiniLM-L6-v2", lock=True)

A locked tower runs with dropout off (its config is rebuilt with dropout 0: a frozen encoder should
give one embedding per input, as at inference), gets no gradient and holds no optimizer state; with
no parameter needing a gradient, autograd records nothing inside it either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from torch import nn

from formers.adapt.freeze import freeze
from formers.interop.pretrained import resolve_pretrained
from formers.io import load
from formers.models.clip import CLIP, CLIPConfig
from formers.registry import build_model

Tower = Literal["image", "text"]


def _without_dropout(config):
    changes = {name: 0.0 for name in ("dropout", "attn_dropout") if hasattr(config, name)}
    return config.replace(**changes)


def with_pretrained_tower(config: CLIPConfig, tower: Tower, source: str | Path, *, lock: bool = True) -> CLIP:
    """A CLIP built from `config` whose `tower` is the pretrained model at `source` (a formers checkpoint,
    a Hugging Face folder, or a name `resolve_pretrained` knows); its config replaces config.<tower>."""
    pretrained = load(resolve_pretrained(source))
    tower_config = _without_dropout(pretrained.config) if lock else pretrained.config
    model = build_model(config.replace(**{tower: tower_config}))
    own = tower_module(model, tower)
    own.load_state_dict(pretrained.state_dict())
    if lock:
        freeze(own)
    return model


def tower_module(model: CLIP, tower: Tower) -> nn.Module:
    return model.image_tower if tower == "image" else model.text_tower
