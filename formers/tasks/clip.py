"""clip: a dual encoder trained contrastively on captioned images (Radford et al. 2021).

    data (Shapes captions, or a labelled image set captioned from templates) + tokenizer
        -> CLIP (image tower + text tower, either of them pretrained and locked: LiT)
        -> Contrastive (symmetric InfoNCE, in-batch false negatives masked) -> Trainer

After training, `held_out_metrics` measures what the issue asks of a CLIP: zero-shot accuracy on each
probe (Shapes: colour and shape of objects in held-out colour x shape combinations; labelled sets:
the class) and retrieval both ways on `retrieval_pairs` held-out pairs (R@1/5/10, median rank),
each beside its chance level. `formers train` prints them and checks the recipe's `expect:` on them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from formers.adapt.lit import Tower, with_pretrained_towers
from formers.config import Config, check
from formers.data.images import load_image_dataset
from formers.data.shapes_text import shapes_tokenizer
from formers.data.tokenizers import Tokenizer, TokenizerConfig, train_tokenizer
from formers.evaluate import both_ways, class_embeddings, zero_shot_accuracy
from formers.interop.pretrained import resolve_pretrained
from formers.io import load_tokenizer
from formers.objectives import Contrastive, ContrastiveConfig
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task, register_task
from formers.tasks.clip_data import (
    ClipData,
    LabelledCaptionsConfig,
    ShapesCaptionsConfig,
    labelled_data,
    shapes_data,
)


@dataclasses.dataclass(kw_only=True)
class ClipTaskConfig(Config):
    data: Literal["shapes", "labelled"] = "shapes"
    shapes: ShapesCaptionsConfig = dataclasses.field(default_factory=ShapesCaptionsConfig)
    labelled: LabelledCaptionsConfig = dataclasses.field(default_factory=LabelledCaptionsConfig)
    contrastive: ContrastiveConfig = dataclasses.field(default_factory=ContrastiveConfig)
    # texts are `wrap[0] text wrap[1]`: [BOS] .. [EOS] for a causal tower pooling at the end, [CLS] .. [SEP] for BERT
    text_wrap: list[str] = dataclasses.field(default_factory=lambda: ["[BOS]", "[EOS]"])
    # a checkpoint, a Hugging Face folder or a packaged name ("all-MiniLM-L6-v2") whose model becomes the tower
    pretrained_text: str | None = None
    pretrained_image: str | None = None
    lock: list[Literal["image", "text"]] = dataclasses.field(default_factory=list)  # frozen towers (LiT)
    retrieval_pairs: int = 1000  # held-out image-caption pairs ranked against each other
    eval_batch_size: int = 250  # images or texts per forward when measuring

    def __post_init__(self) -> None:
        super().__post_init__()
        for tower in self.lock:
            check(self.sources().get(tower) is not None, "ClipTaskConfig.lock", self.lock,
                  f"towers that come pretrained (set pretrained_{tower})")
        check(len(self.text_wrap) == 2, "ClipTaskConfig.text_wrap", self.text_wrap, "two tokens: [first, last]")
        check(self.retrieval_pairs >= 10, "ClipTaskConfig.retrieval_pairs", self.retrieval_pairs, "at least 10")
        check(self.eval_batch_size > 0, "ClipTaskConfig.eval_batch_size", self.eval_batch_size, "a positive int")

    def sources(self) -> dict[Tower, str]:
        named = {"image": self.pretrained_image, "text": self.pretrained_text}
        return {tower: source for tower, source in named.items() if source is not None}


def text_tokenizer(recipe: Recipe) -> Tokenizer:
    """The pretrained text tower's own tokenizer; else the Shapes word tokenizer, or a word tokenizer over
    every caption and prompt of a labelled set."""
    cfg = recipe.objective
    if cfg.pretrained_text is not None:
        return load_tokenizer(resolve_pretrained(cfg.pretrained_text))
    if cfg.data == "shapes":
        return shapes_tokenizer()
    classes = load_image_dataset(cfg.labelled.dataset, "test").classes
    return train_tokenizer(TokenizerConfig(kind="word"), cfg.labelled.texts(classes))


def make_model(recipe: Recipe, tokenizer: Tokenizer) -> torch.nn.Module:
    cfg = recipe.objective
    config = recipe.model
    if cfg.pretrained_text is None:
        config = config.replace(text=config.text.replace(vocab_size=tokenizer.vocab_size))
    if config.text_pooling == "eos":
        last = tokenizer.token_to_id(cfg.text_wrap[1])
        check(config.eos_token_id == last, "model.eos_token_id", config.eos_token_id,
              f"the id of the token every text ends with, {cfg.text_wrap[1]} = {last} (objective.text_wrap)")
    torch.manual_seed(recipe.trainer.seed)
    if not cfg.sources():
        return build_model(config)
    return with_pretrained_towers(config, cfg.sources(), lock=cfg.lock)


def clip_data(recipe: Recipe, tokenizer: Tokenizer) -> ClipData:
    cfg, t = recipe.objective, recipe.trainer
    make = shapes_data if cfg.data == "shapes" else labelled_data
    return make(getattr(cfg, cfg.data), tokenizer, cfg.text_wrap, batch_size=t.batch_size, seed=t.seed,
                eval_batches=t.eval_batches, retrieval_pairs=cfg.retrieval_pairs)


def make_objective(recipe: Recipe) -> Contrastive:
    return Contrastive(recipe.objective.contrastive)


def build(recipe: Recipe) -> Run:
    tokenizer = text_tokenizer(recipe)
    model = make_model(recipe, tokenizer)
    data = clip_data(recipe, tokenizer)
    return Run(model=model, objective=make_objective(recipe), train_source=data.train_source,
               val_batches=data.val_batches, tokenizer=tokenizer)


def eval_data(recipe: Recipe, tokenizer: Tokenizer) -> list[dict]:
    return clip_data(recipe, tokenizer).val_batches


@torch.no_grad()
def embed_images(model, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(x.to(device)).cpu() for x in pixel_values.split(batch_size)])  # (N, E)


@torch.no_grad()
def embed_texts(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_text(i.to(device), m.to(device)).cpu()
                      for i, m in zip(input_ids.split(batch_size), attention_mask.split(batch_size), strict=True)])


def measure(recipe: Recipe, run: Run) -> tuple[dict[str, float], ClipData, torch.Tensor]:
    """Zero-shot accuracy per probe and retrieval both ways, with chance levels; also the retrieval similarities."""
    cfg, model = recipe.objective, run.model
    data = clip_data(recipe, run.tokenizer)
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    images: dict[int, torch.Tensor] = {}  # probes that share their images embed them once
    for probe in data.probes:
        classes = class_embeddings(lambda texts: embed_texts(model, *data.encode(texts), cfg.eval_batch_size),
                                   probe.classes, probe.templates)  # (C, E)
        key = id(probe.pixel_values)
        if key not in images:
            images[key] = embed_images(model, probe.pixel_values, cfg.eval_batch_size)
        result = zero_shot_accuracy(images[key], classes, probe.labels)
        metrics[f"test/zero_shot_{probe.name}"] = result["accuracy"]
        metrics[f"test/zero_shot_{probe.name}_chance"] = result["chance"]
    r = data.retrieval
    similarity = embed_images(model, r.pixel_values, cfg.eval_batch_size) @ embed_texts(
        model, r.input_ids, r.attention_mask, cfg.eval_batch_size).T  # (N, N)
    metrics.update({f"test/{k}": v for k, v in both_ways(similarity, r.positives).items()})
    model.train(was_training)
    return metrics, data, similarity


def held_out_metrics(recipe: Recipe, run: Run) -> dict[str, float]:
    return measure(recipe, run)[0]


def report(recipe: Recipe, run: Run) -> str:
    """Zero-shot and retrieval figures against chance, and what the first held-out images retrieve."""
    metrics, data, similarity = measure(recipe, run)
    lines = []
    for probe in data.probes:
        acc, chance = metrics[f"test/zero_shot_{probe.name}"], metrics[f"test/zero_shot_{probe.name}_chance"]
        lines.append(f"zero-shot {probe.name}: {acc:.3f} on {len(probe.labels)} images, {len(probe.classes)} "
                     f"classes x {len(probe.templates)} prompts (chance {chance:.3f})")
    r = data.retrieval
    n, distinct = len(r.captions), len(set(r.captions))
    for way, name in (("i2t", "image->text"), ("t2i", "text->image")):
        got = ", ".join(f"R@{k} {metrics[f'test/{way}/R@{k}']:.3f} (chance {metrics[f'test/{way}/chance_R@{k}']:.3f})"
                        for k in (1, 5, 10))
        lines.append(f"retrieval {name} on {n} held-out pairs ({distinct} distinct captions): {got}, median rank "
                     f"{metrics[f'test/{way}/median_rank']:g} (chance {metrics[f'test/{way}/chance_median_rank']:g})")
    for i in range(min(3, n)):
        top = similarity[i].topk(3).indices.tolist()
        shown = "; ".join(f"{r.captions[j]!r}{' (right)' if r.positives[i, j] else ''}" for j in top)
        lines.append(f"image {i} (captioned {r.captions[i]!r}) retrieves: {shown}")
    return "\n".join(lines)


register_task("clip", Task(objective_config=ClipTaskConfig, make_objective=make_objective, build=build,
                           report=report, eval_data=eval_data, test_metrics=held_out_metrics))
