"""How the modalities meet matters: late fusion (pooled image + pooled text), single-stream fusion (VisualBERT) and
two-stream co-attention (ViLBERT / LXMERT) compared at equal parameter budgets on VQA and image-text matching
(Lu et al. 2019; Tan & Bansal 2019; Li et al. 2019; Bugliarello et al. 2021 compare the last two in one setting).

Shapes images (24x24, 1-3 objects), the same 2-layer ViT tower in every arm (its 8x8 patches are the 3x3 grid's
cells, fixed 2-D sin-cos positions), BERT-style post-norm text blocks of width 128; every arm is a model config of
the same library code, trained by the one Trainer with the same data, optimiser, schedule and steps:

    late fusion     CLIP-style: the tower's pooled [CLS] and the mean-pooled output of a text-only BERT,
                    concatenated -> MLP (formers.models.late_fusion); the streams never meet before the MLP
    single stream   VisualBERT: the text tokens and the 9 cell tokens in one BERT encoder (formers.models.visualbert)
    co-attention    two streams: text-only BERT layers, then co-attention layers in which the text attends to the
                    image and the image to the text (formers.models.coattention)

Parameter budgets are matched by depth first (the fusion part of each arm holds the same number of full blocks'
worth of weights) and then by the feed-forward width of the co-attention blocks (see `ARMS`); the counts are in the
JSON and asserted within 5% by the test.

Two tasks, each arm trained from scratch for each:

  VQA   colour, size and count questions (the three types the 4,000-step recipes learn; shape and position stay at
        the answer prior there), answer classification (formers.objectives.vqa); accuracy by type on held-out
        colour-shape pairs and on the test split, beside the answer prior.
  ITM   a match / no-match head on each arm (the same classifier interface, 2 outputs), trained on each image with
        its caption, the caption with one attribute changed (the dataset's hard negative) and a caption of another
        image drawn uniformly (easy negative), the positive weighted 2 against the two negatives (as
        formers.objectives.matching balances its ITM); accuracy on each kind of pair, the hard negatives split by
        the attribute changed, and a threshold-free score: how often the positive outscores its hard negative.
        (The library's `vlp` task needs a VisualBERT trunk with ITC projections to mine its negatives; scoring the
        three trunks by the same classification objective keeps the comparison about fusion alone.)

Measured (studies/README.md; one seed, 512 images per split): the claim's ordering did not reproduce. VQA, held-out
pairs after 1,200 steps: late fusion 0.633 > co-attention 0.574 > single stream 0.529 (answer prior 0.395); the
gap is colour (0.567 / 0.439 / 0.134, prior 0.153): a colour question about a named object is answerable from the
pooled image and the question side by side, and the single stream has not learned it yet. ITM, 3,000 steps (16
images, 48 pairs each): balanced accuracy late fusion 0.684 > single stream 0.666 > co-attention 0.491; the first two
reject easy negatives (0.72, 0.67) but match almost every one-attribute negative; only late fusion ranks the true
caption above its hard negative more often than chance (0.57); co-attention never left chance. Against the claim on
both tasks, with no arm yet doing the fine-grained part of matching.

Full run: `python -m studies.fusion_types --out studies/figures`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from formers.data.shapes_batches import MatchingBatches, QuestionBatches
from formers.data.shapes_text import ANSWERS, ATTRIBUTES
from formers.objectives.matching import batch_generator, same_group, sample_negatives
from formers.objectives.vqa import VQALoss, predict_answers
from formers.optim import ScheduleConfig
from formers.registry import build_model, model_config_from_dict
from formers.tasks.shapes_tasks import fit_model, shapes_split, task_tokenizer
from formers.tasks.vqa import VQAConfig, accuracy_by_type
from studies.attention_localisation import tower
from studies.common import curve, fit, pyplot, save, study_args

NAME = "fusion_types"
CLAIM = ("How the modalities are integrated matters: late fusion, single-stream and co-attention fusion compared on "
         "VQA and image-text matching at equal parameter budgets")

SHAPES = {"image_size": 24, "max_objects": 3}
VQA_TYPES = ("colour", "size", "count")
TEXT = {"d_model": 128, "n_heads": 4, "max_seq_len": 40, "dropout": 0.1}  # captions run to ~30 tokens


def classifier(trunk: dict) -> dict:
    return {"family": "sequence_classifier", "pooling": "cls", "dropout": 0.1, "trunk": trunk}


ARMS = {  # name -> model config (the output count is set per task by fit_model)
    # 1 text layer + 1 co-attention layer (two blocks with cross-attention, FFN 640 wide: the budget's balance)
    "co-attention": classifier({"family": "coattention", **TEXT, "n_layers": 1, "n_cross_layers": 1, "d_ff": 640,
                                "image": tower()}),
    # 4 layers over text + cell tokens
    "single stream": classifier({"family": "visualbert", **TEXT, "n_layers": 4, "image": tower()}),
    # a 4-layer text tower beside the image tower, an MLP on the two pooled vectors
    "late fusion": {"family": "late_fusion", "hidden": 128, "dropout": 0.1, "image": tower(),
                    "text": {"family": "bert", **TEXT, "n_layers": 4}},
}
LR, WARMUP = 1e-4, 200  # what the post-norm BERT trunks need (README "Vision and language")


def build(config: dict, n_outputs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(fit_model(model_config_from_dict(config), task_tokenizer().vocab_size, n_outputs))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train(model: nn.Module, objective, source, val: list[dict], steps: int, batch_size: int, seed: int = 0) -> dict:
    schedule = ScheduleConfig(kind="cosine", warmup_steps=min(WARMUP, steps // 5))
    every = max(steps // 6, 1)
    return fit(model, objective, source, steps=steps, lr=LR, batch_size=batch_size, schedule=schedule,
               weight_decay=0.01, val_batches=val, eval_every=every, log_every=every, seed=seed)


# ---- VQA ----

def questions(split: str, batch_size: int, seed: int = 0) -> QuestionBatches:
    data = shapes_split(VQAConfig(shapes=SHAPES), split)
    return QuestionBatches(data, task_tokenizer(), batch_size=batch_size, seed=seed, question_types=list(VQA_TYPES))


def vqa_accuracy(model: nn.Module, batches: list[dict]) -> dict[str, float]:
    return accuracy_by_type(*predict_answers(model, batches))


def vqa_prior(eval_images: int) -> dict[str, dict[str, float]]:
    """Accuracy of answering each question type's most frequent training answer, by split and type."""
    counts: dict[int, Counter] = {}
    for b in questions("train", 64).fixed_batches(4 * eval_images):
        for kind, answer in zip(b["question_types"].tolist(), b["answers"].tolist(), strict=True):
            counts.setdefault(kind, Counter())[answer] += 1
    prior = {k: c.most_common(1)[0][0] for k, c in counts.items()}
    out = {}
    for split in ("test", "heldout"):
        batches = questions(split, 64).fixed_batches(eval_images)
        kinds = torch.cat([b["question_types"] for b in batches])
        guess = torch.tensor([prior[k] for k in kinds.tolist()])
        out[split] = accuracy_by_type(guess, torch.cat([b["answers"] for b in batches]), kinds)
    return out


def run_vqa(config: dict, steps: int, eval_images: int) -> dict[str, Any]:
    model = build(config, len(ANSWERS))
    val = questions("heldout", 64).fixed_batches(eval_images)
    start = time.process_time()
    result = train(model, VQALoss(), questions("train", 48), val, steps, 48)
    return {"params": n_params(model), "heldout": vqa_accuracy(model, val),
            "test": vqa_accuracy(model, questions("test", 64).fixed_batches(eval_images)),
            "curve": curve(result["history"], "val/accuracy"), "cpu_seconds": time.process_time() - start}


# ---- image-text matching ----

PAIR_KINDS = ("positive", "hard", "easy")
ITM_BATCH = 16  # images per step: 48 pairs


def matching(split: str, batch_size: int, seed: int = 0) -> MatchingBatches:
    return MatchingBatches(shapes_split(VQAConfig(shapes=SHAPES), split), task_tokenizer(), batch_size=batch_size,
                           seed=seed)


def pair_logits(model: nn.Module, batch: dict) -> torch.Tensor:
    """Match logits (3B, 2) of each image with its caption, its one-attribute negative and an easy negative (a
    caption of another group drawn uniformly by formers.objectives.matching's sampler, seeded by the batch)."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    easy = sample_negatives(torch.zeros(len(ids), len(ids)), same_group(batch), batch_generator(batch), uniform=True)
    texts = torch.cat([ids, batch["negative_input_ids"], ids[easy]])  # one T: MatchingBatches pads both to one
    masks = torch.cat([mask, batch["negative_attention_mask"], mask[easy]])
    pixels = batch["pixel_values"].repeat(len(PAIR_KINDS), 1, 1, 1)
    return model(texts, masks, pixel_values=pixels).logits  # (3B, 2)


def pair_labels(b: int) -> torch.Tensor:
    """(3B,) 1 for the B positives, 0 for the 2B negatives (the order of `pair_logits`)."""
    labels = torch.zeros(len(PAIR_KINDS) * b, dtype=torch.long)
    labels[:b] = 1
    return labels


def pair_metrics(logits: torch.Tensor, b: int) -> dict[str, torch.Tensor]:
    """Accuracy on each kind of pair, balanced accuracy (positives vs negatives) and how often the positive's
    match margin beats its own hard negative's (threshold-free: a head that says "no" to all scores 0.5)."""
    right = (logits.argmax(-1) == pair_labels(b)).float().view(len(PAIR_KINDS), b)
    margin = (logits[:, 1] - logits[:, 0]).view(len(PAIR_KINDS), b)
    out = {f"{k}_accuracy": right[i].mean() for i, k in enumerate(PAIR_KINDS)}
    out["balanced_accuracy"] = (right[0].mean() + right[1:].mean()) / 2
    out["positive_beats_hard"] = (margin[0] > margin[1]).float().mean() + 0.5 * (margin[0] == margin[1]).float().mean()
    return out


class PairMatching:
    """batch -> {"loss": class-balanced cross-entropy over the three pair kinds, and `pair_metrics`}."""

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = pair_logits(model, batch).float()
        b = len(batch["input_ids"])
        # one positive per two negatives: weighing the positive by 2 balances the classes (matching.py's reason)
        loss = F.cross_entropy(logits, pair_labels(b), weight=torch.tensor([1.0, len(PAIR_KINDS) - 1.0]))
        return {"loss": loss, **{k: v.detach() for k, v in pair_metrics(logits.detach(), b).items()}}


@torch.no_grad()
def itm_scores(model: nn.Module, batches: list[dict]) -> dict[str, float]:
    """`pair_metrics` over fixed batches (weighted by batch size), and hard-negative accuracy by the attribute
    that was changed."""
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    hard_right, attributes = [], []
    for batch in batches:
        b = len(batch["input_ids"])
        logits = pair_logits(model, batch).float()
        for k, v in pair_metrics(logits, b).items():
            sums[k] = sums.get(k, 0.0) + float(v) * b
        hard_right.append(logits[b : 2 * b].argmax(-1) == 0)
        attributes.append(batch["negative_attributes"])
    model.train(was)
    n = sum(len(a) for a in attributes)
    out = {k.removesuffix("_accuracy"): v / n for k, v in sums.items()}
    hard_right, attributes = torch.cat(hard_right).float(), torch.cat(attributes)
    for i, name in enumerate(ATTRIBUTES):
        chosen = attributes == i
        if chosen.any():
            out[f"hard/{name}"] = float(hard_right[chosen].mean())
    return out


def run_itm(config: dict, steps: int, eval_images: int) -> dict[str, Any]:
    model = build(config, 2)
    val = matching("heldout", 64).fixed_batches(eval_images)
    start = time.process_time()
    result = train(model, PairMatching(), matching("train", ITM_BATCH), val, steps, ITM_BATCH)
    return {"params": n_params(model), "heldout": itm_scores(model, val),
            "test": itm_scores(model, matching("test", 64).fixed_batches(eval_images)),
            "curve": curve(result["history"], "val/balanced_accuracy"),
            "curve_beats_hard": curve(result["history"], "val/positive_beats_hard"),
            "cpu_seconds": time.process_time() - start}


# ---- figure and entry point ----

def bars(ax, runs: dict[str, dict], keys: Sequence[str], labels: Sequence[str], extra: dict[str, float] | None = None):
    width = 0.8 / (len(runs) + bool(extra))
    x = torch.arange(len(keys)).float()
    for j, (name, run) in enumerate(runs.items()):
        ax.bar(x + (j - 0.5 * (len(runs) - 1 + bool(extra))) * width, [run["heldout"][k] for k in keys], width,
               label=name)
    if extra:
        ax.bar(x + 0.5 * len(runs) * width, [extra[k] for k in keys], width, label="answer prior", color="grey")
    ax.set_xticks(x.tolist(), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)


def figure(vqa: dict[str, dict], itm: dict[str, dict], prior: dict[str, dict]):
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    colours = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for name, run in vqa.items():
        steps = sorted(run["curve"])
        axes[0, 0].plot(steps, [run["curve"][s] for s in steps], marker="o", ms=3, color=colours[name],
                        label=f"{name} ({run['params']:,} parameters)")
    axes[0, 0].axhline(prior["heldout"]["all"], color="grey", ls="--", lw=1, label="answer prior")
    axes[0, 0].set(xlabel="step", ylabel="accuracy (colour, size, count questions)",
                   title="VQA: held-out accuracy while training")
    for name, run in itm.items():
        for key, style, what in (("curve", "-", "balanced accuracy"), ("curve_beats_hard", "--", "pos. > hard")):
            steps = sorted(run[key])
            axes[1, 0].plot(steps, [run[key][s] for s in steps], ls=style, marker="o", ms=3, color=colours[name],
                            label=f"{name}: {what}")
    axes[1, 0].axhline(0.5, color="grey", ls=":", lw=1)
    axes[1, 0].set(xlabel="step", ylabel="held-out", title="ITM: held-out balanced accuracy (solid) and\n"
                   "how often the positive outscores its hard negative (dashed)")
    for ax in axes[:, 0]:
        ax.legend(fontsize=7)
    keys = ["all", *VQA_TYPES]
    bars(axes[0, 1], vqa, keys, keys, prior["heldout"])
    axes[0, 1].set(title="VQA, held-out pairs: accuracy by question type")
    keys = ["positive", "easy", "hard", *[f"hard/{a}" for a in ATTRIBUTES], "positive_beats_hard"]
    labels = ["positive", "easy\nneg.", "hard\nneg.", *[f"hard:\n{a}" for a in ATTRIBUTES], "pos. >\nhard"]
    bars(axes[1, 1], itm, keys, labels)
    axes[1, 1].axhline(0.5, color="grey", ls=":", lw=1)
    axes[1, 1].set(title="ITM, held-out pairs: accuracy by kind of pair")
    return fig


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--vqa-steps", type=int, default=1200)
    extra.add_argument("--itm-steps", type=int, default=3000)
    extra.add_argument("--keep-vqa", action="store_true",
                       help="reuse the VQA half of OUT/fusion_types.json and train the ITM half only")
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    vqa_steps, itm_steps, eval_images = (40, 20, 64) if args.quick else (known.vqa_steps, known.itm_steps, 512)
    if known.keep_vqa:
        kept = json.loads((args.out / f"{NAME}.json").read_text())
        vqa_steps = kept["vqa_steps"]  # JSON keys are strings: the curves' steps back to numbers, for the figure
        vqa = {arm: {**run, "curve": {int(k): v for k, v in run["curve"].items()}} for arm, run in kept["vqa"].items()}
    else:
        vqa = {name: run_vqa(config, vqa_steps, eval_images) for name, config in ARMS.items()}
    itm = {name: run_itm(config, itm_steps, eval_images) for name, config in ARMS.items()}
    prior = vqa_prior(eval_images)
    result = {"claim": CLAIM, "vqa_steps": vqa_steps, "itm_steps": itm_steps, "eval_images": eval_images,
              "question_types": list(VQA_TYPES), "vqa_prior": prior, "vqa": vqa, "itm": itm,
              "cpu": "Intel Xeon Sapphire Rapids, one thread, shared machine, fp32"}
    return save(args.out, NAME, result, figure(vqa, itm, prior))


if __name__ == "__main__":
    main()
