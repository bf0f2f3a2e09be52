"""Claim: cross-modal attention grounds words in image regions.

A captioner (recipes/caption-shapes.yaml: a 2-layer ViT tower over 24x24 Shapes images, whose 8x8
patches are the 3x3 grid's cells, and a 3-layer Transformer decoder cross-attending to the tower's
[CLS] + 9 patch tokens) is trained with the library's Trainer, then read teacher-forced on every caption
of held-out images. For each caption word that names an object's colour or shape we take the decoder's
cross-attention row of the query at the word's own position (the query that *holds* the word: having
read "red" it must write the shape of the red object next, so it has to find that object; the query
that *predicts* "red" may name any object not yet named, so it is measured too, as `predicts`) and ask
how much of its mass falls on the patches of the object the word names (Shapes gives each object's
mask; an object covers the patch of its cell). Chance is what a uniform row gives: the object's patches
over all image tokens. Per layer, averaged over heads, and for the layer's best head (chosen on the
`test` split, reported on both). Splits: `test` (new images, only colour-shape pairs seen in training)
and `heldout` (every image holds a pair never seen; `novel` restricts to the words of those objects).
A further check: the mass on another object of the same image (per object, images of 2+ objects), so
that "looks at the named object" is told apart from "looks at objects". The control: the same model
untrained (the identical random initialisation).

Caveat, built into what a patch token is: after the tower's self-attention a patch token mixes in other
cells, so attention to token p is attention to region p only as far as the tower keeps tokens local.

    .venv/bin/python -m studies.attention_grounding --out studies/figures --cache runs/attention_grounding-captioner
    .venv/bin/python -m studies.attention_grounding --quick --out /tmp/grounding   # ~15 CPU s

The full run trains 1,500 steps (~6 CPU-min on one thread); the trained captioner is kept in --cache, so a
rerun with the same setting only measures and redraws.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
import time
from pathlib import Path

import torch

from formers.data.shapes import Shapes
from formers.data.shapes_batches import CaptionBatches
from formers.data.shapes_text import SHAPE_WORDS
from formers.interpret.attention_maps import capture_attention
from formers.interpret.modality import token_grid
from formers.io import load
from formers.nn.attention import CrossAttention
from formers.optim import ScheduleConfig
from formers.storage import save_model
from formers.tasks.base import Run, load_recipe
from formers.tasks.captioning import CAPTIONING, WRAP, caption_scores
from formers.tasks.shapes_tasks import shapes_split
from studies.common import fit, pyplot, save, study_args

NAME = "attention_grounding"
RECIPE = "recipes/caption-shapes.yaml"
SPLITS = ("test", "heldout")
QUERIES = ("holds", "predicts")  # the query at the word's position / the one before it (that predicts it)


@dataclasses.dataclass
class Setting:
    steps: int = 1_500
    batch_size: int = 48
    lr: float = 1e-3
    eval_images: int = 256  # per split, each read with all 5 of its captions
    report_images: int = 128  # per split, greedy-decoded for BLEU-4
    # recipe overrides (the model); none for the full run: the recipe's own captioner
    model: dict = dataclasses.field(default_factory=dict)
    seed: int = 0


QUICK = Setting(
    steps=150,
    batch_size=32,
    lr=2e-3,
    eval_images=48,
    report_images=16,
    model={
        "model.d_model": 64,
        "model.n_heads": 4,
        "model.n_layers": 2,
        "model.image.d_model": 64,
        "model.image.n_layers": 1,
    },
)


def build(s: Setting) -> tuple:
    overrides = {
        **s.model,
        "trainer.seed": s.seed,
        "trainer.max_steps": s.steps,
        "trainer.batch_size": s.batch_size,
        "objective.report_images": s.report_images,
    }
    recipe = load_recipe(RECIPE, overrides)
    return recipe, CAPTIONING.build(recipe)  # seeded by trainer.seed: every build starts from the same weights


def train(run: Run, s: Setting) -> dict:
    result = fit(
        run.model,
        run.objective,
        run.train_source,
        steps=s.steps,
        lr=s.lr,
        batch_size=s.batch_size,
        weight_decay=0.01,
        schedule=ScheduleConfig(kind="cosine", warmup_steps=max(1, s.steps // 10)),
        val_batches=run.val_batches[:4],
        eval_every=s.steps,
        log_every=max(1, s.steps // 10),
        seed=s.seed,
    )
    return result["last_eval"]


class Words:
    """Which caption tokens name which object: colour ids and shape-word ids (synonyms included)."""

    def __init__(self, tokenizer, data: Shapes) -> None:
        self.colour = {tokenizer.token_to_id(c): c for c in data.config.colours}
        self.shape = {tokenizer.token_to_id(w): s for s in data.config.shapes for w in SHAPE_WORDS[s]}

    def named(self, ids: list[int], order: tuple[int, ...]) -> list[tuple[int, str, int]]:
        """(position in `ids`, "colour" | "shape", object index) of each naming word: the caption names its
        objects in `order`, each by colour then shape, so the k-th colour (shape) word names object order[k]."""
        out = []
        for kind, table in (("colour", self.colour), ("shape", self.shape)):
            where = [t for t, i in enumerate(ids) if i in table]
            if len(where) != len(order):
                raise AssertionError(f"{len(where)} {kind} words for {len(order)} objects")  # a template change
            out += [(t, kind, obj) for t, obj in zip(where, order, strict=True)]
        return out


def object_patches(masks: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """bool (n_objects, H, W) masks -> bool (n_objects, rows * cols): the patches holding any of its pixels."""
    n, h, w = masks.shape
    return masks.view(n, rows, h // rows, cols, w // cols).any(4).any(2).reshape(n, rows * cols)


@torch.no_grad()
def measure(model, tokenizer, data: Shapes, n_images: int, seed: int) -> dict:
    """Per naming word: its cross-attention mass (L, H) on the named object's patches, on another object's,
    the chance level, and the labels (kind, novel pair?, which query)."""
    model.eval()
    words = Words(tokenizer, data)
    source = CaptionBatches(
        data, tokenizer, batch_size=60, seed=seed, captions_per_image=data.config.n_captions, wrap=WRAP
    )
    heldout = data.config.heldout_pairs
    rec: dict[str, list] = {
        "mass": [],
        "other": [],
        "chance": [],
        "kind": [],
        "novel": [],
        "query": [],
        "n_objects": [],
    }
    example = None
    for batch in source.fixed_batches(n_images):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        with capture_attention(model, (CrossAttention,)) as maps:
            model(pixel_values=batch["pixel_values"], decoder_input_ids=ids, decoder_attention_mask=mask)
        weights = torch.stack([maps[name] for name in maps.run_order()], 2)  # (B, H, L, T, N)
        prefix, rows, cols = token_grid(weights.shape[-1], *batch["pixel_values"].shape[-2:])
        image_ids = batch["image_ids"].tolist()
        rendered = data.render(sorted(set(image_ids)))
        by_id = {
            i: (objs, m, px)
            for i, (objs, _), m, px in zip(
                sorted(set(image_ids)), rendered.scenes, rendered.masks, rendered.images, strict=True
            )
        }
        for b, (i, c) in enumerate(zip(image_ids, batch["caption_ids"].tolist(), strict=True)):
            objects, masks, pixels = by_id[i]
            on = torch.zeros(len(objects), weights.shape[-1], dtype=torch.bool)  # (n_objects, N) image tokens
            on[:, prefix:] = object_patches(masks, rows, cols)
            row = ids[b, : int(mask[b].sum())].tolist()
            for t, kind, k in words.named(row, data.captions(i, objects)[c].order):
                for query, q in zip(QUERIES, (t, t - 1), strict=True):
                    w = weights[b, :, :, q].transpose(0, 1)  # (L, H, N)
                    others = [j for j in range(len(objects)) if j != k]
                    rec["mass"].append((w * on[k]).sum(-1))
                    rec["other"].append(
                        torch.stack([(w * on[j]).sum(-1) for j in others]).mean(0)
                        if others
                        else torch.full(w.shape[:2], float("nan"))
                    )
                    rec["chance"].append(on[k].sum().item() / on.shape[1])
                    rec["kind"].append(kind)
                    rec["novel"].append((objects[k].colour, objects[k].shape) in heldout)
                    rec["query"].append(query)
                    rec["n_objects"].append(len(objects))
                    # the example: the colour and the shape word of the first held-out-pair object (any object
                    # on test images) of an image of 2+ objects, first caption that has one
                    if (
                        example is None
                        and query == "holds"
                        and len(objects) >= 2
                        and (data.split == "test" or rec["novel"][-1])
                    ):
                        example = {
                            "image": i,
                            "caption_id": c,
                            "object": k,
                            "grid": (rows, cols),
                            "words": {},
                            "caption": data.captions(i, objects)[c].text,
                            "mask": masks[k],
                            "pixels": pixels,
                        }
                    if (
                        example is not None
                        and query == "holds"
                        and (example["image"], example["caption_id"], example["object"]) == (i, c, k)
                    ):
                        example["words"][kind] = (tokenizer.decode([row[t]]), w.mean(1)[:, prefix:])  # (L, 9)
    out = {key: (torch.stack(v) if key in ("mass", "other") else v) for key, v in rec.items()}
    out["example"] = example
    return out


def summarise(rec: dict, head: list[int] | None) -> dict:
    """Means over naming words (query `holds` unless said): per layer, head-averaged and at the best head
    (`head[l]`, or chosen here as the head of highest mass / chance), by kind of word, for the other query."""

    def pick(**where) -> torch.Tensor:
        return torch.tensor([all(rec[k][n] == v for k, v in where.items()) for n in range(len(rec["kind"]))])

    def stats(sel: torch.Tensor) -> dict:
        mass, other = rec["mass"][sel], rec["other"][sel]  # (n, L, H)
        chance = torch.tensor(rec["chance"])[sel].mean().item()
        multi = ~other[:, 0, 0].isnan()
        return {
            "words": int(sel.sum()),
            "chance": chance,
            "mass": mass.mean((0, 2)).tolist(),
            "ratio": (mass.mean((0, 2)) / chance).tolist(),
            "other_object": other[multi].mean((0, 2)).tolist(),
            "heads": mass.mean(0) / chance,
        }  # (L, H), dropped before saving

    holds = pick(query="holds")
    overall = stats(holds)
    chosen = head if head is not None else overall["heads"].argmax(1).tolist()
    heads = overall["heads"]
    out = {
        "all": overall,
        "colour": stats(holds & pick(kind="colour")),
        "shape": stats(holds & pick(kind="shape")),
        "predicts": stats(pick(query="predicts")),
        "best_head": chosen,
        "best_head_ratio": [heads[layer, h].item() for layer, h in enumerate(chosen)],
    }
    novel = holds & torch.tensor(rec["novel"])
    if novel.any():
        out["novel"] = stats(novel)
        out["novel"]["best_head_ratio"] = [out["novel"]["heads"][layer, h].item() for layer, h in enumerate(chosen)]
    for part in ("all", "colour", "shape", "predicts", "novel"):
        if part in out:
            out[part].pop("heads")
    return out


def plot(results: dict, examples: dict, n_layers: int):
    plt = pyplot()
    fig, axes = plt.subplots(1, 5, figsize=(19, 5.2), gridspec_kw={"width_ratios": [1.4, 1.4, 1, 1, 1]})
    layers = list(range(1, n_layers + 1))
    grey = "#888"
    for ax, split in zip(axes[:2], SPLITS, strict=True):
        r, u = results["trained"][split], results["untrained"][split]
        chance = r["all"]["chance"]
        lines = [
            (r["all"]["ratio"], "o-", "#c74", "trained: every naming word, heads averaged"),
            (r["best_head_ratio"], "s--", "#c74", "trained: every naming word, best head (chosen on test)"),
            (r["colour"]["ratio"], "^-", "#48c", "trained: colour words (the query that writes the shape next)"),
            (r["shape"]["ratio"], "v-", "#4a8", "trained: shape words (the query after the object is named)"),
            ([o / chance for o in r["all"]["other_object"]], "x:", "#c74", "trained: mass on another object"),
            (u["all"]["ratio"], "o-", grey, "untrained: every naming word, heads averaged"),
            (u["best_head_ratio"], "s--", grey, "untrained: best head"),
        ]
        if "novel" in r:
            lines.insert(1, (r["novel"]["ratio"], "d-", "#a52", "trained: words of held-out pairs only"))
        for values, style, colour, label in lines:
            ax.plot(layers, values, style, color=colour, label=label, ms=5, alpha=0.85)
        ax.axhline(1.0, color="k", lw=1, ls=":")
        ax.set_xticks(layers)
        ax.set_xlabel("decoder layer (cross-attention)")
        ax.set_ylabel("mass on the named object / chance")
        seen = "every image holds a held-out colour-shape pair" if split == "heldout" else "seen pairs only"
        ax.set_title(f"{split} images ({seen})", fontsize=9)
        ax.set_ylim(bottom=0)
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower left", bbox_to_anchor=(0.02, 0.0), ncol=4, fontsize=7)
    panels = [("trained", "colour"), ("trained", "shape"), ("untrained", "colour")]
    for ax, (model, kind) in zip(axes[2:], panels, strict=True):
        ex = examples[model]
        word, weights = ex["words"][kind]
        rows, cols = ex["grid"]
        size = ex["pixels"].shape[-1]
        heat = weights[ex["layer"]].reshape(rows, cols).numpy()
        ax.imshow(ex["pixels"].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.imshow(
            heat,
            cmap="inferno",
            alpha=0.6,
            extent=(-0.5, size - 0.5, size - 0.5, -0.5),
            interpolation="nearest",
            vmin=0,
            vmax=0.6,
        )
        ax.contour(ex["mask"].float().numpy(), levels=[0.5], colors="cyan", linewidths=1.2)
        for y in range(rows):
            for x in range(cols):
                ax.text(
                    (x + 0.5) * size / cols - 0.5,
                    (y + 0.15) * size / rows - 0.5,
                    f"{heat[y, x]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w",
                )
        ax.set_title(
            f"{model}, layer {ex['layer'] + 1}: the query holding '{word}' ({kind})\n"
            "heads averaged; cyan: the object it names",
            fontsize=7.5,
        )
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("\n".join(textwrap.wrap(ex["caption"], 48)), fontsize=6.5)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend below
    return fig


def main(argv: list[str] | None = None) -> dict:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument(
        "--cache", type=Path, default=None, help="where the trained captioner is kept (OUT/NAME-captioner)"
    )
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    args.cache = known.cache
    s = QUICK if args.quick else Setting()
    recipe, run = build(s)
    _, control = build(s)  # the same initial weights, never trained
    cache = args.cache or args.out / f"{NAME}-captioner"
    info = cache / "info.json"
    if info.is_file() and json.loads(info.read_text())["setting"] == dataclasses.asdict(s):
        run.model.load_state_dict(load(cache).state_dict())  # trained before with this setting: reuse it
        last_eval, train_cpu = (json.loads(info.read_text())[k] for k in ("last_eval", "train_cpu_seconds"))
        print(f"trained captioner read from {cache}")
    else:
        start = time.process_time()
        last_eval = train(run, s)
        train_cpu = time.process_time() - start
        save_model(run.model, cache)
        info.write_text(
            json.dumps({"setting": dataclasses.asdict(s), "last_eval": last_eval, "train_cpu_seconds": train_cpu})
        )
    bleu = {split: caption_scores(recipe, run, split)[0]["bleu4"] for split in SPLITS}
    print(
        f"trained {s.steps} steps ({train_cpu:.0f} CPU s): val loss {last_eval['val/loss']:.3f}, "
        f"greedy BLEU-4 test {bleu['test']:.3f} heldout {bleu['heldout']:.3f}"
    )
    results: dict = {}
    examples: dict = {}
    for model_name, model in (("trained", run.model), ("untrained", control.model)):
        results[model_name] = {}
        head = None
        for split in SPLITS:  # test first: its best heads are the ones reported on heldout
            data = shapes_split(recipe.objective, split)
            rec = measure(model, run.tokenizer, data, s.eval_images, s.seed)
            summary = summarise(rec, head)
            head = summary["best_head"]
            results[model_name][split] = summary
            r = summary["all"]
            print(
                f"{model_name:9s} {split:7s} {r['words']} words, chance {r['chance']:.3f}: mass/chance by layer "
                + " ".join(f"{v:.2f}" for v in r["ratio"])
                + " | best head "
                + " ".join(f"{v:.2f}" for v in summary["best_head_ratio"])
                + " | another object "
                + " ".join(f"{v / r['chance']:.2f}" for v in r["other_object"])
            )
            if split == "heldout":
                ex = rec["example"]
                ex["layer"] = int(torch.tensor(results["trained"]["test"]["all"]["ratio"]).argmax())
                examples[model_name] = ex
    n_layers = len(results["trained"]["test"]["all"]["ratio"])
    result = {
        "claim": "cross-modal attention grounds words in image regions: a word's query puts more than "
        "chance of its attention on the patches of the object it names",
        "setting": dataclasses.asdict(s),
        "train_cpu_seconds": train_cpu,
        "val_loss": last_eval["val/loss"],
        "bleu4_greedy": bleu,
        "results": results,
        "example": {
            model: {
                "caption": ex["caption"],
                "layer": ex["layer"] + 1,
                "weights": {ws[0]: ws[1][ex["layer"]].tolist() for ws in ex["words"].values()},
            }
            for model, ex in examples.items()
        },
    }
    return save(args.out, NAME, result, plot(results, examples, n_layers), tight=False)


if __name__ == "__main__":
    main()
