"""When image-text pairs are scarce, a pretrained unimodal tower helps (Zhai et al. 2022, LiT; Radford et al. 2021).

The clip task on Fashion-MNIST captioned from templates (recipes/clip-lit-fashion-mnist.yaml: "a photo of a
sneaker.", 8 templates x 10 classes), the same CNN image tower trained from scratch in every arm, and two text
towers, each a config choice of the same task (formers.tasks.clip):

    locked MiniLM    the real pretrained all-MiniLM-L6-v2, frozen (LiT; `pretrained_text`, `lock: [text]`),
                     its WordPiece tokenizer, mean-pooled
    from scratch     a 2-layer BERT-style tower (d_model 128) over the task's word tokenizer, mean-pooled

at 0.1%, 1%, 10% and 100% of the 60,000 training pairs (`labelled.train_limit`: the first N images). Every arm
takes the same optimiser steps (400 of batch 128, 51,200 pairs shown): equal compute, so what differs is how
many distinct pairs those steps are drawn from, not how long a model trains. The 100% arm sees no pair twice,
the 1% arm each of its 600 pairs about 85 times, the 0.1% arm each of its 60 about 850 times (under the
recipe's random flips and shifts). The captions are the same 80 texts at every fraction: scarcity here is
of images paired with them.

Measured on the 10,000 test images, against chance:
  * zero-shot accuracy with the task's prompts, wordings never used as captions ("a blurry photo of a {}.",
    "this is a {}."): the claim's own test, where a tower must read new words;
  * zero-shot accuracy with the training templates: the same images and classes in words the tower was
    trained on, separating "the image tower learnt less" from "the text tower cannot read the new wording";
  * zero-shot accuracy with the training templates and each class named by a synonym no caption uses
    ("jacket" for coat, "sweater" for pullover): new vocabulary, which a tower trained from scratch reads as
    [UNK] (near chance by construction) and a pretrained one has met elsewhere;
  * retrieval R@1 both ways on 1,000 test pairs captioned from the training templates (any caption of the
    image's class is right; chance ~0.10).

Measured (full run, one thread of a shared 2-core Intel Xeon Sapphire Rapids, fp32; 17.4 CPU-min): not
reproduced as claimed. Zero-shot with unseen prompts, locked MiniLM vs scratch, at 0.1/1/10/100%: 0.555/0.552,
0.775/0.740, 0.777/0.756, 0.785/0.758 (chance 0.10): a small edge that does not grow as pairs get scarcer,
while 60 -> 600 pairs is worth ~0.2 to either. Unseen framing words cost neither tower anything (prompts and
templates within 0.004). What the pretrained tower does bring is vocabulary: classes named by synonyms 0.38-0.48
vs 0.10-0.16. Here the image tower, the one scarcity starves, is from scratch in both arms (LiT locks a
pretrained image tower; none exists offline). Details and caveats: studies/README.md.

    .venv/bin/python -m studies.data_sparsity --out studies/figures
    .venv/bin/python -m studies.data_sparsity --quick --out /tmp/data-sparsity
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from formers.evaluate import class_embeddings, zero_shot_accuracy
from formers.tasks import load_recipe
from formers.tasks.base import Recipe, Run
from formers.tasks.clip import CLIP_TASK, embed_images, embed_texts, measure
from formers.tasks.clip_data import ClipData
from studies.common import curve, fit, pyplot, save, study_args

NAME = "data_sparsity"
CLAIM = ("When image-text pairs are scarce, a pretrained unimodal text tower (locked MiniLM, LiT) helps against "
         "one trained from scratch, in zero-shot accuracy and retrieval")
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "clip-lit-fashion-mnist.yaml"
TRAIN_IMAGES = 60_000  # Fashion-MNIST's training split

SCRATCH_TEXT = {"family": "bert", "d_model": 128, "n_heads": 4, "n_layers": 2, "d_ff": 256, "max_seq_len": 32,
                "dropout": 0.1}
# Fashion-MNIST's classes (formers.data.images) by names no training caption or prompt uses: to a word tokenizer
# built from the captions these are [UNK]; a pretrained tower has read them, in other text, as near synonyms
SYNONYMS = ("tee", "pants", "sweater", "gown", "jacket", "flip flop", "blouse", "running shoe", "handbag", "bootie")
TOWERS = {  # name -> recipe overrides; the recipe itself is the locked MiniLM
    "locked MiniLM (LiT)": {},
    "from scratch": {"objective.pretrained_text": None, "objective.lock": [], "model.text": SCRATCH_TEXT},
}


@dataclasses.dataclass
class Setting:
    fractions: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    steps: int = 400  # x batch 128 = 51,200 pairs: the 100% arm sees most of its pairs once, none twice
    batch_size: int = 128
    warmup_steps: int = 50
    image_widths: tuple[int, ...] = (16, 32, 64)  # the recipe's CNN at half width (CPU budget)
    test_images: int | None = None  # all 10,000
    retrieval_pairs: int = 1000
    eval_every: int = 50
    seed: int = 0


QUICK = Setting(fractions=(0.01, 1.0), steps=60, batch_size=64, warmup_steps=10, image_widths=(8, 16, 32),
                test_images=1000, retrieval_pairs=300, eval_every=20)


def arm_recipe(s: Setting, tower: str, fraction: float) -> Recipe:
    return load_recipe(RECIPE, {
        **TOWERS[tower],
        "objective.labelled.train_limit": round(fraction * TRAIN_IMAGES),
        "objective.labelled.test_limit": s.test_images,
        "objective.retrieval_pairs": s.retrieval_pairs,
        "model.image.widths": list(s.image_widths),
        "trainer.max_steps": s.steps,
        "trainer.batch_size": s.batch_size,
        "trainer.schedule.warmup_steps": s.warmup_steps,
        "trainer.eval_batches": 4,
        "trainer.seed": s.seed,
    })


@torch.no_grad()
def zero_shot_by_wording(recipe: Recipe, run: Run, data: ClipData) -> dict[str, Any]:
    """Zero-shot accuracy on the test images, each wording as an ensemble (CLIP's prompt averaging) and one
    template at a time: the unseen prompts, the training templates, and the templates with the classes named
    by SYNONYMS."""
    model, cfg = run.model.eval(), recipe.objective
    probe = data.probes[0]
    assert len(SYNONYMS) == len(probe.classes), probe.classes
    images = embed_images(model, probe.pixel_values, cfg.eval_batch_size)  # (N, E)

    def accuracy(names: Sequence[str], templates: Sequence[str]) -> float:
        classes = class_embeddings(lambda texts: embed_texts(model, *data.encode(texts), cfg.eval_batch_size),
                                   names, templates)  # (C, E)
        return zero_shot_accuracy(images, classes, probe.labels)["accuracy"]

    wordings = {"prompts": (probe.classes, cfg.labelled.prompts), "templates": (probe.classes, cfg.labelled.templates),
                "synonyms": (SYNONYMS, cfg.labelled.templates)}
    return {name: {"ensemble": accuracy(names, ts), "each": {t: accuracy(names, [t]) for t in ts}}
            for name, (names, ts) in wordings.items()}


def train_arm(s: Setting, tower: str, fraction: float) -> dict[str, Any]:
    recipe = arm_recipe(s, tower, fraction)
    start = time.process_time()
    run = CLIP_TASK.build(recipe)
    t = recipe.trainer
    result = fit(run.model, run.objective, run.train_source, steps=s.steps, lr=t.optimizer.lr,
                 batch_size=s.batch_size, schedule=t.schedule, weight_decay=t.optimizer.weight_decay,
                 val_batches=run.val_batches, eval_every=s.eval_every, log_every=s.eval_every, seed=s.seed)
    metrics, data, _ = measure(recipe, run)  # the task's own figures: zero-shot with unseen prompts, retrieval
    wording = zero_shot_by_wording(recipe, run, data)
    assert abs(wording["prompts"]["ensemble"] - metrics["test/zero_shot_class"]) < 1e-6  # one measurement
    trainable = sum(p.numel() for p in run.model.text_tower.parameters() if p.requires_grad)
    return {
        "train_images": recipe.objective.labelled.train_limit,
        "text_tower_params": sum(p.numel() for p in run.model.text_tower.parameters()),
        "text_tower_trainable": trainable,
        "zero_shot_prompts": metrics["test/zero_shot_class"],
        "zero_shot_templates": wording["templates"]["ensemble"],
        "zero_shot_synonyms": wording["synonyms"]["ensemble"],
        "zero_shot_by_template": wording,
        "i2t_R@1": metrics["test/i2t/R@1"],
        "t2i_R@1": metrics["test/t2i/R@1"],
        "chance": {"zero_shot": metrics["test/zero_shot_class_chance"], "i2t_R@1": metrics["test/i2t/chance_R@1"],
                   "t2i_R@1": metrics["test/t2i/chance_R@1"]},
        "val_loss": curve(result["history"], "val/loss"),
        "train_loss": curve(result["history"], "train/loss"),
        "cpu_seconds": time.process_time() - start,
    }


COLOURS = {"locked MiniLM (LiT)": "#c74", "from scratch": "#48c"}


WORDINGS = {"zero_shot_prompts": ("-", "unseen prompts"), "zero_shot_templates": ("--", "training templates"),
            "zero_shot_synonyms": (":", "class synonyms")}


def line_panel(ax, runs: dict[str, dict[float, dict]], fractions: list[float], lines: dict[str, tuple[str, str]],
               chance: float, title: str) -> None:
    xs = [100 * f for f in fractions]
    for tower, by_fraction in runs.items():
        for key, (style, label) in lines.items():
            ax.plot(xs, [by_fraction[f][key] for f in fractions], style, marker="o", ms=4, color=COLOURS[tower],
                    label=f"{tower}: {label}")
    ax.axhline(chance, color="grey", ls=(0, (1, 3)), lw=1, label="chance")
    ax.set(xscale="log", xlabel="% of the 60,000 training pairs", title=title, ylim=(0, 1))
    ax.set_xticks(xs, [f"{x:g}%" for x in xs])
    ax.minorticks_off()
    below(ax)


def below(ax) -> None:
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)


def figure(runs: dict[str, dict[float, dict]], s: Setting):
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(18, 5.6))
    fractions = [f for f in s.fractions if all(f in by_fraction for by_fraction in runs.values())]  # those run
    first = next(iter(runs.values()))[fractions[0]]["chance"]
    line_panel(axes[0], runs, fractions, WORDINGS, first["zero_shot"], "zero-shot accuracy on 10 classes, by wording")
    line_panel(axes[1], runs, fractions, {"i2t_R@1": ("-", "image->text"), "t2i_R@1": ("--", "text->image")},
               first["i2t_R@1"], "retrieval R@1, held-out pairs")
    ax = axes[2]  # each unseen prompt alone at the scarcest fraction: which new wordings a tower cannot read
    scarce = fractions[0]
    by_template = {t: r[scarce]["zero_shot_by_template"] for t, r in runs.items()}
    prompts = list(next(iter(by_template.values()))["prompts"]["each"])
    labels = [textwrap.fill(p.format("…"), 11) for p in prompts] + ["training\ntemplates", "class\nsynonyms"]
    width = 0.8 / len(runs)
    for i, (tower, each) in enumerate(by_template.items()):
        values = [each["prompts"]["each"][p] for p in prompts] + [each["templates"]["ensemble"],
                                                                  each["synonyms"]["ensemble"]]
        ax.bar([j + (i - (len(runs) - 1) / 2) * width for j in range(len(values))], values, width,
               color=COLOURS[tower], label=tower)
    ax.axhline(first["zero_shot"], color="grey", ls=(0, (1, 3)), lw=1)
    ax.set_xticks(range(len(labels)), labels, fontsize=6.5)
    ax.set(ylim=(0, 1), title=f"zero-shot by wording at {100 * scarce:g}% of the pairs")
    ax.legend(fontsize=7)
    ax = axes[3]
    for tower, by_fraction in runs.items():
        for f, style in zip(fractions, ("-", "--", "-.", ":")[-len(fractions):], strict=True):
            points = by_fraction[f]["val_loss"]
            ax.plot([int(k) for k in points], list(points.values()), style, color=COLOURS[tower],
                    label=f"{tower}, {100 * f:g}%")
    ax.set(xlabel="step", ylabel="contrastive loss", title="held-out loss (test images, template captions)")
    below(ax)
    fig.suptitle(f"CNN image tower from scratch in every arm, {s.steps} steps of {s.batch_size} pairs each "
                 "(one thread of a shared Intel Xeon Sapphire Rapids, fp32)", fontsize=9)
    return fig


def redraw(out: Path) -> dict[str, Any]:
    """The figure again from OUT/NAME.json (or the arms so far, NAME.partial.json), without training."""
    done = out / f"{NAME}.json"
    result = json.loads((done if done.exists() else out / f"{NAME}.partial.json").read_text())
    runs = {tower: {float(f): run for f, run in by_fraction.items()} for tower, by_fraction in result["runs"].items()}
    setting = Setting(**{k: tuple(v) if isinstance(v, list) else v for k, v in result["setting"].items()})
    return save(out, NAME, result, figure(runs, setting))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--redraw", action="store_true", help="redraw OUT/data_sparsity.png from its JSON")
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    if known.redraw:
        return redraw(args.out)
    s = QUICK if args.quick else Setting()
    start = time.process_time()
    runs: dict[str, dict[float, dict]] = {tower: {} for tower in TOWERS}
    result = {"claim": CLAIM, "setting": dataclasses.asdict(s), "runs": runs}
    for fraction in s.fractions:
        for tower in TOWERS:
            run = runs[tower][fraction] = train_arm(s, tower, fraction)
            print(f"{100 * fraction:5g}% {tower:20s} zero-shot prompts {run['zero_shot_prompts']:.3f} templates "
                  f"{run['zero_shot_templates']:.3f} synonyms {run['zero_shot_synonyms']:.3f}  R@1 i2t "
                  f"{run['i2t_R@1']:.3f} t2i {run['t2i_R@1']:.3f} ({run['cpu_seconds']:.0f} CPU-s)", flush=True)
            (args.out / f"{NAME}.partial.json").write_text(json.dumps(result, indent=1))  # arms so far
    result["cpu_seconds"] = time.process_time() - start
    (args.out / f"{NAME}.partial.json").unlink()
    return save(args.out, NAME, result, figure(runs, s))


if __name__ == "__main__":
    main()
