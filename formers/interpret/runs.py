"""One run per family inside `capture_attention`, turned into an `AttentionView` (formers.interpret.views).

Decoders are run teacher-forced on the whole sequence: with causal attention, position t's weights are
exactly the ones the step that generated token t + 1 used, so a caption's per-word cross-attention maps
come from one forward. Each decoder position is labelled with the token it reads and the one it predicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from formers.errors import ConfigError, ImageInputError
from formers.generation import TokenRange, generate
from formers.interpret.attention_maps import AttentionMaps, capture_attention
from formers.interpret.heads import head_importance
from formers.interpret.views import (
    AttentionView,
    Stream,
    collect,
    display_image,
    image_stream,
    joined,
    labels_of,
    modality_rows,
    pick_layers,
    rollouts,
    text_stream,
    trunk_config,
)
from formers.text_to_image import encode_captions

# family (of the model, or of the trunk under a task head) -> the runner below and its routing table
# (formers.interpret.views.ROUTES); module names under a head start with "trunk.", which routing allows
KINDS = {
    "gpt": "text", "bert": "text", "transformer": "seq2seq", "t5": "seq2seq", "bart": "seq2seq", "vit": "vit",
    "captioner": "captioner", "visualbert": "visualbert", "coattention": "coattention", "clip": "clip",
    "dalle": "dalle",
}


class Ran(NamedTuple):
    """What one runner returns: the recorded maps, the token streams, the patch grid and the picture (image
    models), and, for models that predict tokens, the loss of what they read (for head importance)."""

    maps: AttentionMaps
    streams: dict[str, Stream]
    grid: tuple[int, int] | None = None
    image: torch.Tensor | None = None
    loss: Callable[[nn.Module], torch.Tensor] | None = None


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ids[1:] given logits (1, T, V) of positions [0, T - 1)."""
    return F.cross_entropy(logits[0, : ids.shape[1] - 1].float(), ids[0, 1:])


def need_text(tokenizer, text: str | None, family: str) -> torch.Tensor:
    if text is None or tokenizer is None:
        raise ConfigError(f"a {family} model reads text: give the text (--text) and a checkpoint with a tokenizer")
    ids = tokenizer.encode(text)
    if not ids:
        raise ConfigError(f"the text {text!r} encodes to no tokens; give some text")
    return torch.tensor([ids])


def need_pixels(pixel_values: torch.Tensor | None, family: str) -> torch.Tensor:
    if pixel_values is None:
        raise ImageInputError(f"a {family} model reads an image: give one (--image FILE)")
    return pixel_values


def image_tokens(maps: AttentionMaps, pixel_values: torch.Tensor, part: str) -> tuple[Stream, tuple[int, int]]:
    """The image stream, sized by what the tower's first attention layer saw."""
    first = next(name for name in maps.run_order() if part in name)
    return image_stream(maps[first].shape[-1], *pixel_values.shape[-2:])


def with_predictions(stream: Stream, logits: torch.Tensor, tokenizer) -> Stream:
    """Label decoder positions "reads -> predicts" with the argmax of their logits (1, T, V)."""
    predicted = labels_of(tokenizer, logits[0].argmax(-1).tolist())
    return Stream([f"{a}\u2192{b}" for a, b in zip(stream.labels, predicted, strict=True)], stream.modality,
                  stream.patch)


def run_text(model, tokenizer, text, pixel_values, max_new_tokens):
    ids = need_text(tokenizer, text, model.config.family)
    with capture_attention(model) as maps:
        model(ids)
    # a GPT predicts the text it reads; BERT's MLM head does not (no masks), so it gets no loss
    loss = (lambda m: next_token_loss(m(ids).logits, ids)) if model.config.family == "gpt" else None
    return Ran(maps, {"text": text_stream(labels_of(tokenizer, ids[0].tolist()))}, loss=loss)


def run_seq2seq(model, tokenizer, text, pixel_values, max_new_tokens):
    src = need_text(tokenizer, text, model.config.family)
    tgt = generate(model, src, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_id,
                   pad_token_id=tokenizer.pad_id)
    with capture_attention(model) as maps:
        logits = model(input_ids=src, decoder_input_ids=tgt).logits
    target = with_predictions(text_stream(labels_of(tokenizer, tgt[0].tolist())), logits, tokenizer)
    streams = {"source": text_stream(labels_of(tokenizer, src[0].tolist())), "target": target}
    return Ran(maps, streams, loss=lambda m: next_token_loss(m(input_ids=src, decoder_input_ids=tgt).logits, tgt))


def run_vit(model, tokenizer, text, pixel_values, max_new_tokens):
    pixel_values = need_pixels(pixel_values, "vit")
    with capture_attention(model) as maps:
        model(pixel_values)
    stream, grid = image_tokens(maps, pixel_values, "")
    return Ran(maps, {"image": stream}, grid, display_image(pixel_values))


def run_captioner(model, tokenizer, text, pixel_values, max_new_tokens):
    pixel_values = need_pixels(pixel_values, "captioner")
    start = model.config.decoder_start_token_id
    if text:  # the caption to explain, teacher-forced: where does the model look for each of its words?
        ids = torch.tensor([[start, *tokenizer.encode(text, add_special_tokens=False)]])
    else:  # the model's own greedy caption
        eos = tokenizer.token_to_id("[EOS]") if tokenizer.token_to_id("[EOS]") is not None else tokenizer.eos_id
        ids = generate(model, pixel_values, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                       pad_token_id=tokenizer.pad_id or 0)
    with capture_attention(model) as maps:
        logits = model(pixel_values=pixel_values, decoder_input_ids=ids).logits
    image, grid = image_tokens(maps, pixel_values, "image_tower.")
    caption = with_predictions(text_stream(labels_of(tokenizer, ids[0].tolist())), logits, tokenizer)
    return Ran(maps, {"image": image, "caption": caption}, grid, display_image(pixel_values),
               lambda m: next_token_loss(m(pixel_values=pixel_values, decoder_input_ids=ids).logits, ids))


def fusion(model, tokenizer, text, pixel_values) -> tuple[AttentionMaps, Stream, Stream, tuple[int, int]]:
    """Text and image through a fusion model (bare, or a task head / VLP model around one)."""
    ids = need_text(tokenizer, text, "fusion")
    pixel_values = need_pixels(pixel_values, "fusion")
    with capture_attention(model) as maps:
        model(ids, pixel_values=pixel_values)
    image, grid = image_tokens(maps, pixel_values, "visual_tokens.")
    return maps, text_stream(labels_of(tokenizer, ids[0].tolist())), image, grid


def run_visualbert(model, tokenizer, text, pixel_values, max_new_tokens):
    maps, words, image, grid = fusion(model, tokenizer, text, pixel_values)
    # one stream: the text, then the visual tokens
    return Ran(maps, {"image": image, "joint": joined(words, image)}, grid, display_image(pixel_values))


def run_coattention(model, tokenizer, text, pixel_values, max_new_tokens):
    maps, words, image, grid = fusion(model, tokenizer, text, pixel_values)
    return Ran(maps, {"image": image, "text": words}, grid, display_image(pixel_values))


def run_clip(model, tokenizer, text, pixel_values, max_new_tokens):
    ids = need_text(tokenizer, text, "clip")
    pixel_values = need_pixels(pixel_values, "clip")
    with capture_attention(model) as maps:
        model(pixel_values, ids)
    image, grid = image_tokens(maps, pixel_values, "image_tower.")
    words = text_stream(labels_of(tokenizer, ids[0].tolist()))
    return Ran(maps, {"image": image, "text": words}, grid, display_image(pixel_values))


def run_dalle(model, tokenizer, text, pixel_values, max_new_tokens):
    """Caption, then image tokens sampled (seed 0: greedy decoding draws flat images) and fed back at once:
    each image position's row splits between the caption and the image drawn so far, step by step."""
    cfg = model.config
    if text is None or tokenizer is None:
        raise ConfigError("a dalle model draws a caption: give it (--text) and a checkpoint with a tokenizer")
    prompt = encode_captions(tokenizer, [text], cfg.text_len)  # (1, text_len)
    ids = generate(model, prompt, max_new_tokens=cfg.n_image_tokens, do_sample=True,
                   generator=torch.Generator().manual_seed(0), logits_processor=TokenRange(*model.image_token_range))
    with capture_attention(model) as maps:
        model(ids[:, :-1])  # the last token is drawn, never read
    rows, cols = cfg.grid
    words = text_stream(labels_of(tokenizer, prompt[0].tolist()))
    cells = Stream([f"r{i // cols}c{i % cols}" for i in range(rows * cols - 1)], ["image"] * (rows * cols - 1),
                   list(range(rows * cols - 1)))
    picture = model.decode_image_tokens(ids[:, cfg.text_len:])[0].permute(1, 2, 0).float()  # (H, W, C) in [0, 1]
    picture = picture if picture.shape[-1] == 3 else picture[..., :1].expand(-1, -1, 3)
    read = ids[:, :-1]

    def image_loss(m: nn.Module) -> torch.Tensor:  # the image tokens only: the caption was given
        logits = m(read).logits[0, cfg.text_len - 1:]  # the positions that predict image tokens
        return F.cross_entropy(logits.float(), ids[0, cfg.text_len:])

    return Ran(maps, {"joint": joined(words, cells)}, (rows, cols), picture, image_loss)


RUNNERS: dict[str, Callable] = {
    "text": run_text, "seq2seq": run_seq2seq, "vit": run_vit, "captioner": run_captioner,
    "visualbert": run_visualbert, "coattention": run_coattention, "clip": run_clip, "dalle": run_dalle,
}


@torch.no_grad()
def build_view(model: nn.Module, tokenizer=None, *, text: str | None = None, pixel_values: torch.Tensor | None = None,
               max_new_tokens: int = 20, max_layers: int | None = None, heads: bool = False,
               title: str = "") -> AttentionView:
    """Run `model` once on `text` and/or `pixel_values` (1, C, H, W) and gather what the viewer draws.

    `heads=True` adds each head's importance (formers.interpret.heads: the rise of the loss of what the
    model read when the head is masked; one forward per head) for models that predict tokens."""
    family = trunk_config(model.config).family  # a VQA head on VisualBERT is drawn as VisualBERT
    if family not in KINDS:
        raise ConfigError(f"the viewer draws families {sorted(KINDS)} (and task heads on them); got {family!r}")
    if pixel_values is not None and (pixel_values.dim() != 4 or pixel_values.shape[0] != 1):
        raise ImageInputError(f"pixel_values must be one image (1, C, H, W); got shape {tuple(pixel_values.shape)}")
    kind = KINDS[family]
    ran = RUNNERS[kind](model.eval(), tokenizer, text, pixel_values, max_new_tokens)
    layers = collect(ran.maps, kind, ran.streams)
    modality = modality_rows(ran.maps, layers, ran.streams)
    if heads:
        if ran.loss is None:
            raise ConfigError(f"head importance needs a loss: {family} models here predict no tokens of their input")
        scores = head_importance(model, ran.loss)
        layers = [dataclasses.replace(layer, importance=scores[layer.name]) for layer in layers]
    layers = pick_layers(layers + rollouts(layers), max_layers)
    return AttentionView(title or family, ran.streams, layers, modality, ran.image, ran.grid)
