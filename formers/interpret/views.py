"""What the viewer draws: one model run on one input, its attention maps labelled by the tokens they join.

An `AttentionView` holds token streams (a stream is a sequence some attention reads: the text, an image's
patches, VisualBERT's text-then-patches), one `Layer` per recorded attention module (its query and key
streams and weights (H, T_q, T_k)), the attention rollout of each stream whose layers are all
self-attention, the modality-importance rows, and the image. `build_view` runs a model of any family with
attention inside `capture_attention`; a small table per family says which stream each module reads.
"""

from __future__ import annotations

import dataclasses

import torch

from formers.config import Config
from formers.errors import ConfigError
from formers.interpret.attention_maps import AttentionMaps
from formers.interpret.modality import modality_share, token_grid, update_share
from formers.interpret.rollout import attention_rollout
from formers.registry import model_config_from_dict


@dataclasses.dataclass
class Stream:
    """Token labels, each token's modality ("text" or "image") and its patch index (-1: not a patch)."""

    labels: list[str]
    modality: list[str]
    patch: list[int]


@dataclasses.dataclass
class Layer:
    name: str
    query: str  # stream names
    key: str
    kind: str  # "self", "cross" or "rollout"
    weights: torch.Tensor  # (H, T_q, T_k)
    importance: torch.Tensor | None = None  # (H,) loss rise when each head is masked (build_view(heads=True))


@dataclasses.dataclass
class ModalityRow:
    """Share of what the `query` stream's tokens take from the image at one layer, (H, T_q) (H = 1 when the
    heads are summed: two-stream blocks, see formers.interpret.modality)."""

    name: str
    query: str
    measure: str  # "attention mass" or "update norm"
    share: torch.Tensor


@dataclasses.dataclass
class AttentionView:
    title: str
    streams: dict[str, Stream]
    layers: list[Layer]
    modality: list[ModalityRow]
    image: torch.Tensor | None = None  # (H, W, 3) in [0, 1], for the overlays
    grid: tuple[int, int] | None = None  # patch rows, cols


def trunk_config(config: Config) -> Config:
    """The config of the model that holds the attention: a task head's or reward model's trunk, else itself."""
    trunk = getattr(config, "trunk", None)  # heads store their trunk's config, as a mapping
    if trunk is None:
        return config
    return model_config_from_dict(trunk, where=f"{config.family}.trunk") if isinstance(trunk, dict) else trunk


def text_stream(labels: list[str]) -> Stream:
    return Stream(list(labels), ["text"] * len(labels), [-1] * len(labels))


def image_stream(n_tokens: int, height: int, width: int) -> tuple[Stream, tuple[int, int]]:
    prefix, rows, cols = token_grid(n_tokens, height, width)
    labels = ["[CLS]" if prefix == 1 else f"[P{i}]" for i in range(prefix)]
    labels += [f"r{i // cols}c{i % cols}" for i in range(rows * cols)]
    return Stream(labels, ["image"] * n_tokens, [-1] * prefix + list(range(rows * cols))), (rows, cols)


def joined(a: Stream, b: Stream) -> Stream:
    return Stream(a.labels + b.labels, a.modality + b.modality, a.patch + b.patch)


# family -> [(substring of a module name, query stream, key stream)], the first match wins
ROUTES: dict[str, list[tuple[str, str, str]]] = {
    "text": [("", "text", "text")],
    "vit": [("", "image", "image")],
    "seq2seq": [("encoder.", "source", "source"), ("cross_attention", "target", "source"), ("", "target", "target")],
    "captioner": [("image_tower.", "image", "image"), ("cross_attention", "caption", "image"),
                  ("", "caption", "caption")],
    "visualbert": [("visual_tokens.", "image", "image"), ("", "joint", "joint")],
    "coattention": [("visual_tokens.", "image", "image"), ("text_block.cross", "text", "image"),
                    ("image_block.cross", "image", "text"), ("image_block.", "image", "image"), ("", "text", "text")],
    "clip": [("image_tower.", "image", "image"), ("", "text", "text")],
    "dalle": [("", "joint", "joint")],
}


def route(family: str, name: str) -> tuple[str, str]:
    for part, query, key in ROUTES[family]:
        if part in name:
            return query, key
    raise AssertionError(f"no route for {name}")  # unreachable: every table ends with ""


def collect(maps: AttentionMaps, family: str, streams: dict[str, Stream]) -> list[Layer]:
    """Every recorded module as a Layer of the first batch row, in run order."""
    layers = []
    for name in maps.run_order():
        query, key = route(family, name)
        weights = maps[name][0].float()  # (H, T_q, T_k)
        expected = (len(streams[query].labels), len(streams[key].labels))
        if tuple(weights.shape[1:]) != expected:  # a table out of step with the model: say so, do not draw nonsense
            raise ConfigError(f"{name}: weights {tuple(weights.shape[1:])} do not fit streams {query}/{key} "
                              f"of {expected} tokens")
        layers.append(Layer(name, query, key, "cross" if query != key else "self", weights))
    return layers


def rollouts(layers: list[Layer]) -> list[Layer]:
    """The rollout of each stream that only attends to itself (a text stack, an image tower)."""
    out = []
    for stream in dict.fromkeys(layer.query for layer in layers):
        own = [layer for layer in layers if layer.query == stream]
        if all(layer.key == stream for layer in own):
            rolled = attention_rollout([layer.weights[None] for layer in own])[0]
            out.append(Layer(f"rollout: {stream}", stream, stream, "rollout", rolled[None]))
    return out


def modality_rows(maps: AttentionMaps, layers: list[Layer], streams: dict[str, Stream]) -> list[ModalityRow]:
    """Attention mass on image keys for mixed streams; self vs cross update norms for two-stream blocks."""
    rows = []
    for layer in layers:
        keys = streams[layer.key].modality
        if layer.kind == "self" and len(set(keys)) == 2:
            is_image = torch.tensor([m == "image" for m in keys])
            rows.append(ModalityRow(layer.name, layer.query, "attention mass", modality_share(layer.weights, is_image)))
        elif layer.kind == "cross":
            own = layer.name.replace("cross_attention", "attention")
            if own not in maps.kernels:
                continue
            same, other = maps.update_norms(own)[0].sum(0), maps.update_norms(layer.name)[0].sum(0)  # (T_q,)
            if streams[layer.key].modality[0] == "text":  # the image stream reading text: its share is the own part
                same, other = other, same
            rows.append(ModalityRow(layer.name.replace(".cross_attention.sublayer", ""), layer.query,
                                    "update norm", update_share(same, other)[None]))
    return rows


def pick_layers(layers: list[Layer], max_layers: int | None) -> list[Layer]:
    """At most `max_layers` attention layers, evenly spaced (first and last kept); rollouts always stay."""
    attention = [layer for layer in layers if layer.kind != "rollout"]
    if max_layers is None or len(attention) <= max_layers:
        return layers
    if max_layers < 2:
        raise ConfigError(f"max_layers={max_layers} is not allowed; expected an int >= 2 (first and last layer)")
    keep = {round(i * (len(attention) - 1) / (max_layers - 1)) for i in range(max_layers)}
    kept = [layer for i, layer in enumerate(attention) if i in keep]
    return kept + [layer for layer in layers if layer.kind == "rollout"]


def labels_of(tokenizer, ids: list[int]) -> list[str]:
    """One label per token: its text as the tokenizer spells it (byte-level pieces stay readable)."""
    out = []
    for i in ids:
        piece = tokenizer.backend.id_to_token(i)
        out.append(piece if piece is not None else tokenizer.decode([i], skip_special_tokens=False))
    return [p.replace("\u0120", "\u2423").replace("\u010a", "\\n") for p in out]  # GPT-2 bytes for space, newline


def display_image(pixel_values: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) normalised pixels -> (H, W, 3) in [0, 1], each channel stretched to its own range."""
    x = pixel_values[0].float()
    lo, hi = x.amin(dim=(1, 2), keepdim=True), x.amax(dim=(1, 2), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-6)
    return (x if x.shape[0] == 3 else x[:1].expand(3, -1, -1)).permute(1, 2, 0)
