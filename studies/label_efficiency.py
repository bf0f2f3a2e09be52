"""Masked language(-image) modelling as pretraining helps most when labels are scarce (Devlin et al. 2019;
Tan & Bansal 2019, LXMERT; Chen et al. 2020, UNITER; Li et al. 2021, ALBEF).

The VQA recipe (recipes/vqa-visualbert-shapes.yaml: a 3-layer VisualBERT over a 2-layer ViT tower whose 8x8
patches are the 3x3 cells of 24x24 Shapes images, a linear head on the fused [CLS]) fine-tuned with 1%, 10% and
100% of the labels, each from scratch and from a pretrained trunk. Every arm is a config choice of that recipe:

    labels        `objective.n_train_images` 40 / 400 / 4,000: a fixed set of training images, each with 6
                  questions (one per type: colour, shape, size, count, position, yes/no), so 240 / 2,400 /
                  24,000 labelled questions; a batch row takes an image and one of its questions at random
    init          scratch, or `objective.pretrained` = a recipes/vlp-shapes.yaml run: ITC + ITM + MLM on
                  fresh images (3,000 steps of 32 captions = 96,000 image-caption pairs, no answers); and,
                  with --mlm-steps, the same recipe with `itc_weight: 0, itm_weight: 0` (masked language
                  modelling with visual context alone, pretrained here)

All arms train the same number of steps (batch 48, cosine schedule, the recipe's lr 1e-4): equal compute, so
the only difference is how many labels there are to learn from (1% is seen ~1,800 times per image, 100% ~18).
`max_seq_len` is 40 everywhere, the pretraining recipe's. Measured: accuracy on held-out colour-shape pairs
and on test images (seen pairs), by question type, against the answer prior (each type's most frequent
training answer: what a model that ignores the image reaches).

Measured (studies/README.md; Intel Xeon Sapphire Rapids, one thread, fp32; 4,000 steps per arm, 43.3 CPU-min):
NOT reproduced. Held-out pairs (prior 0.302), 1% / 10% / 100%: scratch 0.310 / 0.383 / 0.424, pretrained
0.323 / 0.323 / 0.393; test (prior 0.315) 0.299 / 0.432 / 0.451 vs 0.302 / 0.391 / 0.432. With 10% and 100% of
the labels both arms leave the prior and the pretrained trunk is behind; with 1% neither leaves it. (At 1,500
steps no arm had left the prior.) The --quick run
(tiny trunk, lr 1e-3, 150 steps of MLM-only pretraining made here, 250 fine-tuning steps on 40 images; 52 CPU-s):
both arms end at 0.292 held-out (prior 0.302), the pretrained one 0.031 ahead at each of the first three
evaluations.

Full run (the pretrained run: `formers train recipes/vlp-shapes.yaml --out runs/vlp`, 31 min on a shared core;
without --pretrained the study trains it itself into OUT/label_efficiency-vlp):
`python -m studies.label_efficiency --pretrained runs/vlp --out studies/figures`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from formers.data.shapes_text import QUESTION_TYPES
from formers.optim import ScheduleConfig
from formers.storage import save_model
from formers.tasks import vlp, vqa
from formers.tasks.base import Recipe, load_recipe
from studies.common import curve, fit, pyplot, save, study_args

NAME = "label_efficiency"
CLAIM = "Masked language(-image) modelling as pretraining helps most when labels are scarce"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SEQ_LEN = {"model.trunk.max_seq_len": 40}  # the pretraining recipe's; the VQA recipe has 32
# --quick: a trunk small enough to pretrain and fine-tune in under a minute (the same overrides for both
# recipes); at the recipes' lr 1e-4 it does not even learn the answer prior in 300 steps (measured), so 1e-3
QUICK = {"model.trunk.d_model": 64, "model.trunk.n_layers": 2, "model.trunk.image.d_model": 64,
         "model.trunk.image.n_layers": 1, "trainer.optimizer.lr": 1e-3}
MLM_ONLY = {"objective.itc_weight": 0.0, "objective.itm_weight": 0.0}
QUESTIONS_PER_IMAGE = len(QUESTION_TYPES)
ALL_LABELS = 4000  # images of the 100% arm


def pretrain(out: Path, shared: dict, objectives: dict, steps: int, tag: str) -> Path:
    """Train recipes/vlp-shapes.yaml (with `objectives`' weights) into OUT/NAME-TAG, or reuse what is there."""
    folder = out / f"{NAME}-{tag}"
    if (folder / "config.json").is_file():
        return folder
    recipe = load_recipe(RECIPES / "vlp-shapes.yaml", {**SEQ_LEN, **shared, **objectives})
    run = vlp.build(recipe)
    t = recipe.trainer
    start = time.process_time()
    schedule = ScheduleConfig(kind="cosine", warmup_steps=min(t.schedule.warmup_steps, steps // 10))
    result = fit(run.model, run.objective, run.train_source, steps=steps, lr=t.optimizer.lr, batch_size=t.batch_size,
                 schedule=schedule, weight_decay=t.optimizer.weight_decay, log_every=max(steps // 4, 1))
    save_model(run.model, folder, run.tokenizer)
    mlm = curve(result["history"], "train/mlm_accuracy")
    print(f"pretrained {tag}: {steps} steps, {time.process_time() - start:.0f} CPU-s, MLM accuracy by step {mlm}")
    return folder


def finetune(n_images: int, pretrained: Path | None, *, shared: dict, steps: int, eval_images: int,
             prior_images: int = 1024) -> dict[str, Any]:
    """The VQA recipe on `n_images` labelled images from `pretrained`'s trunk (None: scratch)."""
    overrides = {**SEQ_LEN, "objective.prior_images": prior_images, **shared, "objective.n_train_images": n_images,
                 "objective.eval_images": eval_images,
                 "objective.pretrained": None if pretrained is None else str(pretrained)}
    recipe: Recipe = load_recipe(RECIPES / "vqa-visualbert-shapes.yaml", overrides)
    run = vqa.build(recipe)
    t = recipe.trainer
    start = time.process_time()
    result = fit(run.model, run.objective, run.train_source, steps=steps, lr=t.optimizer.lr,
                 batch_size=t.batch_size, weight_decay=t.optimizer.weight_decay,
                 schedule=ScheduleConfig(kind="cosine", warmup_steps=min(t.schedule.warmup_steps, steps // 10)),
                 val_batches=run.val_batches, eval_every=max(steps // 6, 1), log_every=max(steps // 6, 1),
                 seed=t.seed)
    cpu = time.process_time() - start
    return {"questions": n_images * QUESTIONS_PER_IMAGE, **vqa.evaluate_splits(recipe, run),
            "curve": curve(result["history"], "val/accuracy"), "cpu_seconds": cpu}


def figure(result: dict[str, Any]):
    plt = pyplot()
    runs, fractions = result["runs"], result["label_images"]
    inits = list(runs)
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.3))
    x = [n * QUESTIONS_PER_IMAGE for n in fractions]
    for i, init in enumerate(inits):
        colour = f"C{i}"
        for split, style in (("heldout", "-"), ("test", "--")):
            left.plot(x, [runs[init][str(n)][split]["all"] for n in fractions], style, marker="o", color=colour,
                      label=f"{init}, {'held-out pairs' if split == 'heldout' else 'test'}")
    prior = runs[inits[0]][str(fractions[0])]["heldout prior"]["all"]
    left.axhline(prior, color="grey", ls=":", lw=1, label="answer prior (held-out)")
    left.set(xscale="log", xlabel="labelled questions (log)", ylabel="VQA accuracy",
             title=f"accuracy vs labels ({result['steps']} steps each)")
    left.legend(fontsize=7)
    width = 0.8 / max(len(inits) - 1, 1)
    for i, init in enumerate(inits[1:]):
        for split, offset, hatch in (("heldout", 0.0, ""), ("test", 0.4 * width, "//")):
            gain = [runs[init][str(n)][split]["all"] - runs[inits[0]][str(n)][split]["all"] for n in fractions]
            middle.bar([k + i * width - 0.4 + offset + width / 4 for k in range(len(fractions))], gain,
                       width * 0.4, color=f"C{i + 1}", hatch=hatch,
                       label=f"{init}, {'held-out' if split == 'heldout' else 'test'}")
    middle.axhline(0, color="black", lw=0.8)
    middle.set_xticks(range(len(fractions)), [f"{n:,} images\n({100 * n / ALL_LABELS:g}% of labels)"
                                              for n in fractions])
    middle.set(ylabel="accuracy gain over scratch", title="what pretraining buys")
    middle.legend(fontsize=7)
    smallest = str(fractions[0])
    kinds = list(QUESTION_TYPES)
    bars = [*inits, "answer prior"]
    width = 0.8 / len(bars)
    for i, name in enumerate(bars):
        acc = runs[inits[0]][smallest]["heldout prior"] if name == "answer prior" else runs[name][smallest]["heldout"]
        right.bar([k + (i - len(bars) / 2 + 0.5) * width for k in range(len(kinds))], [acc[k] for k in kinds],
                  width, label=name, color="lightgrey" if name == "answer prior" else f"C{i}")
    right.set_xticks(range(len(kinds)), kinds)
    right.set(ylim=(0, 1), ylabel="held-out accuracy", title=f"by question type, {fractions[0]} labelled images")
    right.legend(fontsize=7)
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--pretrained", type=Path, default=None,
                       help="a recipes/vlp-shapes.yaml run (ITC + ITM + MLM); default: train one into OUT")
    extra.add_argument("--mlm-steps", type=int, default=0, help="also pretrain MLM-only for this many steps")
    extra.add_argument("--steps", type=int, default=4000, help="fine-tuning steps of every arm")
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    if args.quick:  # a tiny trunk, MLM-only pretraining (the claim's objective), 1% of the labels only
        shared, fractions, steps, eval_images = QUICK, [ALL_LABELS // 100], 250, 192
        pretrained = {"MLM (pretrained here)": pretrain(args.out, shared, MLM_ONLY, 150, "quick-mlm")}
    else:
        shared, fractions, eval_images = {}, [ALL_LABELS // 100, ALL_LABELS // 10, ALL_LABELS], 384
        steps = known.steps
        vlp_run = known.pretrained or pretrain(args.out, shared, {}, 3000, "vlp")
        pretrained = {"ITC + ITM + MLM": Path(vlp_run)}
        if known.mlm_steps:
            pretrained["MLM only"] = pretrain(args.out, shared, MLM_ONLY, known.mlm_steps, f"mlm-{known.mlm_steps}")
    inits = {"scratch": None, **pretrained}
    runs = {init: {str(n): finetune(n, path, shared=shared, steps=steps, eval_images=eval_images,
                                     prior_images=1024 if eval_images > 192 else 256) for n in fractions}
            for init, path in inits.items()}
    result = {"claim": CLAIM, "steps": steps, "batch_size": 48, "label_images": fractions,
              "questions_per_image": QUESTIONS_PER_IMAGE, "eval_images": eval_images,
              "pretrained": {k: str(v) for k, v in pretrained.items()}, "runs": runs}
    return save(args.out, NAME, result, figure(result))


if __name__ == "__main__":
    main()
