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
from formers.evaluate import both_ways, class_embeddings, zero_shot_accuracy
from formers.interop.pretrained import resolve_pretrained
from formers.io import load_tokenizer
from formers.objectives import Contrastive, ContrastiveConfig
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task, register_task
from formers.tasks.clip_data import CaptionEncoder, ClipData, LabelledCaptionsConfig, labelled_data


@dataclasses.dataclass(kw_only=True)
class ClipTaskConfig(Config):
    data: Literal["labelled"] = "labelled"
    labelled: LabelledCaptionsConfig = dataclasses.field(default_factory=LabelledCaptionsConfig)
    contrastive: ContrastiveConfig = dataclasses.field(default_factory=ContrastiveConfig)
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
        check(self.retrieval_pairs >= 10, "ClipTaskConfig.retrieval_pairs", self.retrieval_pairs, "at least 10")
        check(self.eval_batch_size > 0, "ClipTaskConfig.eval_batch_size", self.eval_batch_size, "a positive int")

    def sources(self) -> dict[Tower, str]:
        named = {"image": self.pretrained_image, "text": self.pretrained_text}
        return {tower: source for tower, source in named.items() if source is not None}


def text_tokenizer(recipe: Recipe):
    """The pretrained text tower's own tokenizer."""
    cfg = recipe.objective
    return load_tokenizer(resolve_pretrained(cfg.pretrained_text))


def make_model(recipe: Recipe, tokenizer) -> torch.nn.Module:
    cfg = recipe.objective
    torch.manual_seed(recipe.trainer.seed)
    config = recipe.model
    if cfg.pretrained_text is None:
        config = config.replace(text=config.text.replace(vocab_size=tokenizer.vocab_size))
    if not cfg.sources():
        return build_model(config)
    return with_pretrained_towers(config, cfg.sources(), lock=cfg.lock)


def clip_data(recipe: Recipe, encode: CaptionEncoder) -> ClipData:
    cfg, t = recipe.objective, recipe.trainer
    return labelled_data(cfg.labelled, encode, batch_size=t.batch_size, seed=t.seed, eval_batches=t.eval_batches,
                         retrieval_pairs=cfg.retrieval_pairs)


def make_objective(recipe: Recipe) -> Contrastive:
    return Contrastive(recipe.objective.contrastive)


def build(recipe: Recipe) -> Run:
    tokenizer = text_tokenizer(recipe)
    model = make_model(recipe, tokenizer)
    data = clip_data(recipe, CaptionEncoder(tokenizer, model.config.text.max_seq_len))
    return Run(model=model, objective=make_objective(recipe), train_source=data.train_source,
               val_batches=data.val_batches, tokenizer=tokenizer)


def eval_data(recipe: Recipe, tokenizer) -> list[dict]:
    return clip_data(recipe, CaptionEncoder(tokenizer)).val_batches


@torch.no_grad()
def embed_images(model, pixel_values: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.encode_image(x.to(device)).cpu() for x in pixel_values.split(batch_size)])  # (N, E)


@torch.no_grad()
def embed_texts(model, encode: CaptionEncoder, texts: list[str], batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = encode(texts[start:start + batch_size])
        out.append(model.encode_text(ids.to(device), mask.to(device)).cpu())
    return torch.cat(out)  # (N, E)


def measure(recipe: Recipe, run: Run) -> tuple[dict[str, float], ClipData, torch.Tensor]:
    """Zero-shot accuracy per probe and retrieval both ways, with chance levels; also the retrieval similarities."""
    cfg, model = recipe.objective, run.model
    encode = CaptionEncoder(run.tokenizer)
    data = clip_data(recipe, encode)
    was_training = model.training
    model.eval()
    metrics: dict[str, float] = {}
    for probe in data.probes:
        classes = class_embeddings(lambda texts: embed_texts(model, encode, texts, cfg.eval_batch_size),
                                   probe.classes, probe.templates)  # (C, E)
        result = zero_shot_accuracy(embed_images(model, probe.pixel_values, cfg.eval_batch_size), classes,
                                    probe.labels)
        metrics[f"test/zero_shot_{probe.name}"] = result["accuracy"]
        metrics[f"test/zero_shot_{probe.name}_chance"] = result["chance"]
    images = embed_images(model, data.retrieval.pixel_values, cfg.eval_batch_size)
    texts = embed_texts(model, encode, data.retrieval.captions, cfg.eval_batch_size)
    similarity = images @ texts.T  # (N, N)
    metrics.update({f"test/{k}": v for k, v in both_ways(similarity, data.retrieval.positives).items()})
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
    n = len(data.retrieval.captions)
    for way, name in (("i2t", "image->text"), ("t2i", "text->image")):
        got = ", ".join(f"R@{k} {metrics[f'test/{way}/R@{k}']:.3f} (chance {metrics[f'test/{way}/chance_R@{k}']:.3f})"
                        for k in (1, 5, 10))
        lines.append(f"retrieval {name} on {n} held-out pairs: {got}, median rank "
                     f"{metrics[f'test/{way}/median_rank']:g} (chance {metrics[f'test/{way}/chance_median_rank']:g})")
    for i in range(min(3, n)):
        top = similarity[i].topk(3).indices.tolist()
        shown = "; ".join(f"{data.retrieval.captions[j]!r}{' (right)' if data.retrieval.positives[i, j] else ''}"
                          for j in top)
        lines.append(f"image {i} (captioned {data.retrieval.captions[i]!r}) retrieves: {shown}")
    return "\n".join(lines)


register_task("clip", Task(objective_config=ClipTaskConfig, make_objective=make_objective, build=build,
                           report=report, eval_data=eval_data, test_metrics=held_out_metrics))
