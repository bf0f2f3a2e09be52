"""Annotation matters: several captions per image beat one, and caption noise hurts (retrieval); balanced
positive/negative pairs for image-text matching.

Lin et al. 2014 (COCO) paid for five captions per image; Radford et al. 2021 (CLIP) and Jia et al. 2021 (ALIGN)
train on one noisy alt-text per web image, ALIGN arguing that scale makes up for the noise. Here a small CLIP (the
clip task's model, data, contrastive loss and Trainer: recipes/clip-shapes.yaml shrunk) learns from a FIXED set of
`n_images` Shapes training images whose annotation is the only thing that changes between arms:

    1 caption / image       each image keeps one of its 5 captions (which one: drawn per image, so the set's
                            wording is as varied as with 5; only the multiplicity differs)
    5 captions / image      each image keeps all 5; every visit draws one (open_clip's COCO loader; not
                            `captions_per_image: 5`, which would put fewer images, hence fewer negatives, in a batch)
    1 caption, 5x images    one caption each on 5 x n_images images: as many captions as "5 captions / image"
    1 caption, p noisy      a fraction p of the images (0.2, 0.5; nested) carry the caption of another image (one
                            past the training set) instead of their own, the same wrong one at every visit

Budget: the same steps x batch (image-caption pairs seen) for every arm, so "5 captions" costs no extra compute,
only annotation. At that budget each image of `n_images` is seen ~`steps x batch / n_images` times: the regime
where a model can memorise its annotations. Measured per arm (two seeds: the images, annotation and init all
change): retrieval R@1 both ways among 1,000 held-out-pair images (colour x shape pairs never trained on) and
1,000 test images (seen pairs), a caption counting as right when it is true of the image; zero-shot colour and
shape on held-out pairs; R@1 on the arm's own training annotations (how well it fits what it was told).

Measured (full run: 500 images, 500 steps x 64, seeds 0 and 1; R@1 the mean of both ways over 1,000 pairs, chance
0.003): five captions per image double retrieval over one (held-out 0.402 vs 0.197, test 0.422 vs 0.165); one caption
is memorised (its own training captions retrieved 0.999) while the test loss rises from step ~170. At an equal count
of captions and compute, one caption on 5x the images reaches 0.365 / 0.362: five captions did at least as well (the
gap, 0.04, is within the seeds' spread). Noise hurts and is memorised too: 20% of the images with another image's
caption drop held-out R@1 to 0.076, 50% to 0.026 (own captions still 0.99). Matching head (c): 1:7 pairs accept 0.17
of the held-out positives (1:1: 0.83), balanced accuracy 0.57 vs 0.79, with the same AUC (0.861 vs 0.863); moving the
threshold by log 7 gives back 0.79: imbalance moves the threshold, not the ranking.

    nice .venv/bin/python -m studies.annotation --out studies/figures   (one thread: 12.3 CPU-min, 735 s user+sys)
    .venv/bin/python -m studies.annotation --quick --out /tmp/annotation
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from formers.data.batches import step_seed
from formers.data.shapes import Shapes
from formers.data.shapes_batches import CaptionBatches
from formers.data.shapes_draw import ShapeObject
from formers.data.shapes_text import Caption
from formers.evaluate import both_ways
from formers.tasks import load_recipe
from formers.tasks.base import Recipe
from formers.tasks.clip import CLIP_TASK, embed_images, embed_texts, measure, text_tokenizer
from studies.annotation_matching import matcher, pair_pool, train_matcher
from studies.common import curve, fit, pyplot, save, study_args

NAME = "annotation"
CLAIM = ("Several captions per image beat one caption per image for retrieval, and caption noise hurts "
         "(Lin et al. 2014; Radford et al. 2021; Jia et al. 2021)")
ROOT = Path(__file__).resolve().parents[1]
ANNOTATION_STREAM = 7_919  # step_seed component of the annotation's draws: apart from Shapes' own streams


@dataclasses.dataclass(frozen=True)
class Annotation:
    captions_per_image: int = 1
    image_factor: int = 1  # training images = image_factor x Setting.n_images
    noise: float = 0.0  # fraction of the images whose caption is another image's


ARMS = {
    "1 caption / image": Annotation(),
    "5 captions / image": Annotation(captions_per_image=5),
    "1 caption, 5x images": Annotation(image_factor=5),
    "1 caption, 20% noisy": Annotation(noise=0.2),
    "1 caption, 50% noisy": Annotation(noise=0.5),
}
def small_clip(width: int, cnn_widths: list[int], lr: float = 2e-3) -> dict:
    """recipes/clip-shapes.yaml's overrides for a small CLIP on 24x24 images."""
    return {
        "objective.shapes.shapes.image_size": 24,
        "objective.shapes.hard_negatives": [],  # their texts alter the true objects: undefined for a noisy caption
        "model.image": {"family": "cnn", "n_channels": 3, "widths": cnn_widths, "depths": [1, 1, 1], "groups": 4},
        "model.text.d_model": width, "model.text.n_layers": 2, "model.text.d_ff": 2 * width, "model.embed_dim": width,
        "trainer.optimizer.lr": lr, "trainer.schedule.warmup_steps": 30,
    }


MATCHER_CLIP = "5 captions / image"  # the arm whose CLIP gives part (c)'s matching head its frozen features
ITM_SHOWN = ("positive_accuracy", "easy_accuracy", "hard_accuracy", "balanced_accuracy", "auc")


@dataclasses.dataclass
class Setting:
    n_images: int = 500
    steps: int = 500
    batch_size: int = 64
    seeds: tuple[int, ...] = (0, 1)
    eval_pairs: int = 1000  # images per retrieval split (held-out pairs; test)
    probe_images: int = 300  # single-object images per zero-shot probe
    arms: tuple[str, ...] = tuple(ARMS)
    itm_ratios: tuple[int, ...] = (1, 7)  # negatives per positive in the matching head's training pairs
    itm_steps: int = 2000
    itm_lr: float = 3e-3
    itm_pairs: int = 64  # pairs per step, whatever the ratio
    itm_train_images: int = 2000
    overrides: dict = dataclasses.field(default_factory=lambda: small_clip(64, [16, 32, 64]))


QUICK = Setting(n_images=100, steps=150, seeds=(0,), eval_pairs=200, probe_images=50,
                arms=("1 caption / image", "5 captions / image", "1 caption, 50% noisy"), itm_steps=1000,
                itm_train_images=300, overrides=small_clip(32, [8, 16, 32], lr=3e-3))


class AnnotatedShapes(Shapes):
    """Shapes' train split whose images 0..n_images-1 carry `annotation`'s captions instead of all five: each image
    keeps `captions_per_image` of its captions (drawn per image), and a fixed `noise` fraction of the images carry
    those of image n_images + i (another scene of the split) instead. The loader cannot tell: the batch source
    computes `matches` as if every caption described its own image, as a web-scale loader would."""

    def __init__(self, shapes: Shapes, n_images: int, annotation: Annotation, seed: int) -> None:
        super().__init__(shapes.config, split=shapes.split, seed=shapes.seed)
        self.n_images, self.annotation = n_images, annotation
        order = list(range(n_images))
        random.Random(step_seed(seed, ANNOTATION_STREAM)).shuffle(order)
        self.noisy = set(order[: round(annotation.noise * n_images)])  # a prefix: 20% noisy images lie within 50%

    def captions(self, i: int, objects: Sequence[ShapeObject] | None = None) -> list[Caption]:
        if i >= self.n_images:
            return super().captions(i, objects)
        k, n = self.annotation.captions_per_image, self.config.n_captions
        kept = random.Random(step_seed(self.seed, ANNOTATION_STREAM, i)).sample(range(n), k)
        told = super().captions(self.n_images + i) if i in self.noisy else super().captions(i, objects)
        return [told[kept[j % k]] for j in range(n)]  # every draw of the batch source lands on a kept caption


def recipe_for(s: Setting, seed: int, n_images: int) -> Recipe:
    return load_recipe(ROOT / "recipes" / "clip-shapes.yaml", {
        **s.overrides, "trainer.batch_size": s.batch_size, "trainer.max_steps": s.steps, "trainer.seed": seed,
        "objective.shapes.n_images": n_images, "objective.shapes.probe_images": s.probe_images,
        "objective.retrieval_pairs": s.eval_pairs})


@torch.no_grad()
def retrieval_r1(model: torch.nn.Module, pairs: dict) -> dict[str, float]:
    """R@1 both ways over one batch of pairs (a caption is right for every image it is true of) and chance."""
    model.eval()
    sim = embed_images(model, pairs["pixel_values"], 250) @ embed_texts(
        model, pairs["input_ids"], pairs["attention_mask"], 250).T  # (N, N)
    out = both_ways(sim, pairs["matches"], ks=(1,))
    model.train()
    return {"i2t": out["i2t/R@1"], "t2i": out["t2i/R@1"], "chance": out["i2t/chance_R@1"]}


def train_arm(s: Setting, annotation: Annotation, seed: int) -> tuple[dict[str, Any], torch.nn.Module, Recipe]:
    start = time.process_time()
    n_images = annotation.image_factor * s.n_images
    recipe = recipe_for(s, seed, n_images)
    run = CLIP_TASK.build(recipe)
    wrap = tuple(recipe.objective.text_wrap)
    train = AnnotatedShapes(run.train_source.data, n_images, annotation, seed)
    source = CaptionBatches(train, run.tokenizer, batch_size=s.batch_size, seed=seed, n_images=n_images, wrap=wrap)
    t = recipe.trainer
    history = fit(run.model, run.objective, source, steps=s.steps, lr=t.optimizer.lr, batch_size=s.batch_size,
                  schedule=t.schedule, weight_decay=t.optimizer.weight_decay, val_batches=run.val_batches,
                  eval_every=max(s.steps // 6, 1), log_every=max(s.steps // 6, 1), seed=seed)["history"]
    metrics = measure(recipe, run)[0]
    test = CaptionBatches(Shapes(train.config, split="test", seed=seed), run.tokenizer, batch_size=s.batch_size,
                          seed=seed, wrap=wrap).fixed_batches(s.eval_pairs, batch_size=s.eval_pairs)[0]
    own = source.fixed_batches(min(s.n_images, s.eval_pairs), batch_size=min(s.n_images, s.eval_pairs))[0]
    return {
        "n_images": n_images, "distinct_captions": n_images * annotation.captions_per_image,
        "heldout": {"i2t": metrics["test/i2t/R@1"], "t2i": metrics["test/t2i/R@1"],
                    "chance": metrics["test/i2t/chance_R@1"]},
        "test": retrieval_r1(run.model, test),
        "own_annotations": retrieval_r1(run.model, own),  # the training images with the captions they were given
        "zero_shot": {k: metrics[f"test/zero_shot_{k}"] for k in ("colour", "shape", "colour_seen", "shape_seen")},
        "val_loss": curve(history, "val/loss"),
        "cpu_seconds": time.process_time() - start,
    }, run.model, recipe


def matching_arms(s: Setting, clip: torch.nn.Module, recipe: Recipe, seed: int) -> dict[str, dict[str, Any]]:
    """Part (c): match heads on the frozen CLIP, one per ratio of negatives to positives, on the same pairs."""
    start = time.process_time()
    shapes, wrap, tokenizer = recipe.objective.shapes.shapes, tuple(recipe.objective.text_wrap), text_tokenizer(recipe)
    torch.manual_seed(seed)
    model = matcher(clip)
    sizes = {"train": s.itm_train_images, "test": s.eval_pairs, "heldout": s.eval_pairs}
    pools = {split: pair_pool(model, Shapes(shapes, split=split, seed=seed), tokenizer, wrap, n, seed)
             for split, n in sizes.items()}
    out = {"features_cpu_seconds": time.process_time() - start}
    for ratio in s.itm_ratios:
        start = time.process_time()
        result = train_matcher(model, pools, ratio, steps=s.itm_steps, pairs=s.itm_pairs, lr=s.itm_lr, seed=seed)
        out[f"1:{ratio}"] = {**result, "cpu_seconds": time.process_time() - start}
    return out


def mean(runs: list[dict], split: str, key: str) -> float:
    return sum(r[split][key] for r in runs) / len(runs)


def mean_r1(runs: list[dict], split: str) -> float:
    """R@1 averaged over both directions and the seeds."""
    return sum(r[split]["i2t"] + r[split]["t2i"] for r in runs) / (2 * len(runs))


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    return {name: {"heldout_R@1": mean_r1(rs, "heldout"), "test_R@1": mean_r1(rs, "test"),
                   "own_annotations_R@1": mean_r1(rs, "own_annotations"),
                   "zero_shot_colour": sum(r["zero_shot"]["colour"] for r in rs) / len(rs),
                   "zero_shot_shape": sum(r["zero_shot"]["shape"] for r in rs) / len(rs)}
            for name, rs in runs.items()}


def figure(runs: dict[str, list[dict]], matching: dict[str, list[dict]], s: Setting):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    splits = {"heldout": "held-out pairs", "test": "test (seen pairs)", "own_annotations": "own training captions"}
    captions = [a for a in ("1 caption / image", "5 captions / image", "1 caption, 5x images") if a in runs]
    noise = [a for a in ("1 caption / image", "1 caption, 20% noisy", "1 caption, 50% noisy") if a in runs]
    ax = axes[0, 0]
    width = 0.8 / len(splits)
    for k, (split, label) in enumerate(splits.items()):
        x = [i + (k - 1) * width for i in range(len(captions))]
        ax.bar(x, [mean_r1(runs[a], split) for a in captions], width, label=label)
        for xi, a in zip(x, captions, strict=True):  # each seed's value as a dot
            ax.plot([xi] * len(runs[a]), [(r[split]["i2t"] + r[split]["t2i"]) / 2 for r in runs[a]], "k.", ms=4)
    ax.set_xticks(range(len(captions)), [f"{a}\n({runs[a][0]['n_images']} images)" for a in captions], fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="retrieval R@1 (mean of both ways)",
           title=f"(a) captions per image: {s.steps} steps x {s.batch_size} pairs each")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ps = [ARMS[a].noise for a in noise]
    for split, label in splits.items():
        ax.plot(ps, [mean_r1(runs[a], split) for a in noise], marker="o", label=label)
    ax.set(xlabel="fraction of images carrying another image's caption", ylabel="retrieval R@1", ylim=(0, 1.05),
           title=f"(b) caption noise (1 caption / image, {s.n_images} images)", xticks=ps)
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    for name, rs in runs.items():
        points = sorted(rs[0]["val_loss"])
        ax.plot(points, [sum(r["val_loss"][p] for r in rs) / len(rs) for p in points], marker="o", ms=3, label=name)
    ax.set(xlabel="step", ylabel=f"contrastive loss on test pairs (batches of {s.batch_size})",
           title="validation loss while training")
    ax.legend(fontsize=7)
    ax = axes[1, 1]
    shown = (*ITM_SHOWN, "prior_corrected_balanced_accuracy")
    labels = ["positives", "easy\nnegatives", "hard\nnegatives", "balanced\naccuracy", "AUC",
              "balanced acc.,\nprior-corrected"]
    width = 0.8 / len(matching)
    for k, (name, rs) in enumerate(matching.items()):
        x = [i + (k - (len(matching) - 1) / 2) * width for i in range(len(shown))]
        ax.bar(x, [mean(rs, "heldout", key) for key in shown], width, label=f"positives:negatives {name}")
    ax.set_xticks(range(len(shown)), labels, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="held-out pairs",
           title=f"(c) match head on a frozen CLIP ({MATCHER_CLIP}), {s.itm_steps} steps x {s.itm_pairs} pairs")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    model = {k.split(".")[-1]: v for k, v in s.overrides.items() if k.startswith("model.")}
    fig.text(0.01, 0.005, f"small CLIP (CNN widths {model['image']['widths']}, 2-layer text of width "
             f"{model['d_model']}), Shapes 24x24, seeds "
             f"{list(s.seeds)} (bars: mean; dots: seeds); Intel Xeon Sapphire Rapids, one thread, shared machine",
             fontsize=8)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = study_args(__doc__, argv, NAME)
    s = QUICK if args.quick else Setting()
    start = time.process_time()
    runs: dict[str, list[dict]] = {}
    clips = {}  # seed -> (the "5 captions / image" CLIP, its recipe): part (c)'s frozen features
    for name in s.arms:
        runs[name] = []
        for seed in s.seeds:
            result, model, recipe = train_arm(s, ARMS[name], seed)
            runs[name].append(result)
            if name == MATCHER_CLIP:
                clips[seed] = model, recipe
        print(f"{name:24s} held-out R@1 {mean_r1(runs[name], 'heldout'):.3f}  test {mean_r1(runs[name], 'test'):.3f}"
              f"  own captions {mean_r1(runs[name], 'own_annotations'):.3f}", flush=True)
    per_seed = [matching_arms(s, *clips[seed], seed) for seed in s.seeds]
    matching = {f"1:{r}": [m[f"1:{r}"] for m in per_seed] for r in s.itm_ratios}
    for name, rs in matching.items():
        print(f"ITM {name}: " + ", ".join(f"{k} {mean(rs, 'heldout', k):.3f}" for k in ITM_SHOWN), flush=True)
    summary = summarise(runs)
    result = {"claim": CLAIM, "setting": dataclasses.asdict(s),
              "arms": {name: dataclasses.asdict(ARMS[name]) for name in s.arms},
              "summary": summary, "runs": runs, "matching": matching, "cpu_seconds": time.process_time() - start}
    return save(args.out, NAME, result, figure(runs, matching, s), tight=False)


if __name__ == "__main__":
    main()
