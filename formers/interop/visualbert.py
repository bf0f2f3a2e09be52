"""VisualBERT (`transformers` VisualBertForPreTraining, or a bare VisualBertModel) <-> formers VisualBert.

The trunk and heads are BERT's, under "visual_bert." instead of "bert."; the visual embedding adds three
tensors. Only the reference's plain path has a counterpart: no image tower (the reference reads
`visual_embeds` features), no `bypass_transformer`, no image-text alignment (not an input here).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from formers.errors import CheckpointError, ConfigError
from formers.interop import bert
from formers.interop.mapping import HFFamily, Rule, module
from formers.models.visualbert import VisualBertConfig

PREFIX = "visual_bert."


def config_from_hf(hf: dict[str, Any], state: dict[str, torch.Tensor]) -> VisualBertConfig:
    if hf.get("bypass_transformer"):
        raise CheckpointError("VisualBERT checkpoints with bypass_transformer=true are not supported: formers "
                              "runs text and visual tokens through one stack")
    base = bert.config_from_hf(hf, {k.replace(PREFIX, "bert."): v for k, v in state.items()})
    return VisualBertConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)
                               if f.init and f.name != "family"}, visual_dim=hf.get("visual_embedding_dim", 512))


def config_to_hf(c: VisualBertConfig) -> dict[str, Any]:
    if c.image is not None:
        raise ConfigError(f"no Hugging Face visual_bert counterpart for VisualBertConfig.image={c.image.family!r}: "
                          "the reference reads visual_embeds features; export a model built with image=None")
    out = bert.config_to_hf(c)  # refuses what BERT's layout cannot express
    return {**out, "model_type": "visual_bert", "architectures": ["VisualBertForPreTraining"],
            "visual_embedding_dim": c.visual_dim, "bypass_transformer": False, "special_visual_initialize": True}


def rules(c: VisualBertConfig) -> list[Rule]:
    renamed = [dataclasses.replace(r, theirs=tuple(t.replace("bert.", PREFIX, 1) if t.startswith("bert.") else t
                                                   for t in r.theirs)) for r in bert.rules(c)]
    e = PREFIX + "embeddings."
    return [
        *renamed,
        Rule("visual_embedding.segment.weight", (e + "visual_token_type_embeddings.weight",)),
        Rule("visual_embedding.position.weight", (e + "visual_position_embeddings.weight",)),
        *module("visual_embedding.projection", e + "visual_projection"),
    ]


def ignored(c: VisualBertConfig) -> list[str]:
    return [p.replace(r"(bert\.)?", r"(visual_bert\.)?") for p in bert.ignored(c)]


VISUAL_BERT = HFFamily("visual_bert", "visualbert", "VisualBertForPreTraining", PREFIX, config_from_hf,
                       config_to_hf, rules, ignored)
