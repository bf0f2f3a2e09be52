"""Claim: CLIP classifies zero-shot from text alone, a supervised linear probe on the same features beats it in
distribution, and CLIP can judge (and rerank) what a DALL-E-style model draws; where each fails.

Radford et al. 2021 (sections 3.1, 3.2) compare zero-shot CLIP with logistic regression on its frozen image
features: the probe, given labelled examples, is stronger in distribution; zero-shot needs none and names
classes it was never shown labelled. Ramesh et al. 2021 (section 2.5) rerank DALL-E's samples with a CLIP.
Here both on Shapes (formers.data.shapes), whose held-out colour x shape pairs (red triangle, orange diamond,
..., eight of 64) never appear in the CLIP's or the DALL-E's training images or text:

  1. zero-shot vs probe: single-object images of seen pairs (test split) and of held-out pairs. Zero-shot
     colour (shape) is the class whose prompt ensemble is nearest, each class named beside every shape
     (colour), exactly as the clip task measures it (formers.tasks.clip_data.attribute_probes). The probes
     are multinomial logistic regressions (scikit-learn, L2 strength chosen on a fifth of their training
     images) on the CLIP's frozen unit image embeddings and on the image tower's pooled features before the
     projection, trained on train-split single-object images (seen pairs only). Pairs: zero-shot over all 64
     "colour shape" names (the judge below, formers.tasks.text_to_image_judge.judge_pairs) against the two
     probes' predictions combined: a 64-way probe could not even output a held-out pair.
  2. DALL-E judged by CLIP: the text-to-image model (formers.models.dalle, over VQ-VAE codes) draws
     `samples_per_prompt` images for the canonical captions of seen and held-out pairs; the CLIP judges each
     (colour right? shape right?) before and after reranking (formers.tasks.text_to_image_judge.measure_prompts),
     beside the judge's accuracy on the prompts' real images, its ceiling.

The full run reads trained run folders: `--clip` (recipes/clip-shapes.yaml) and `--dalle` (recipes/dalle-shapes.yaml,
whose checkpoint carries its VQ-VAE decoder). --quick trains a tiny CLIP here through the Trainer (the clip
task's model, data and objective) and, a DALL-E being too costly to train in seconds, exercises the judging
code on real images instead: each prompt's own image against real images of other prompts (shuffled captions).

    .venv/bin/python -m studies.clip_zero_shot --clip runs/clip-shapes --dalle runs/dalle-shapes --out studies/figures
    .venv/bin/python -m studies.clip_zero_shot --quick --out /tmp/clip-zero-shot
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from formers.data.shapes import Shapes, ShapesConfig
from formers.evaluate import class_embeddings, zero_shot_accuracy
from formers.io import load, load_tokenizer
from formers.storage import save_model
from formers.tasks import checkpoint_recipe, load_recipe
from formers.tasks.clip import CLIP_TASK
from formers.tasks.clip_data import ZeroShotProbe, attribute_probes
from formers.tasks.text_to_image_judge import SPLITS, judge_pairs, load_judge, measure_prompts, prompts_of
from formers.text_to_image import ClipScorer, rerank
from studies.clip_zero_shot_figure import METHODS, plot
from studies.common import fit, save, study_args

NAME = "clip_zero_shot"
ROOT = Path(__file__).resolve().parents[1]
FEATURES = ("embedding", "pooled")  # unit CLIP embedding; the image tower's pooled output before the projection
PROBE_C = (0.01, 0.1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried on standardised features


@dataclasses.dataclass
class Setting:
    n_probe_train: int = 4_000  # train-split single-object images the probes learn from
    n_eval: int = 2_000  # single-object images per evaluation split (seen pairs; held-out pairs)
    n_prompts: int = 128  # DALL-E prompts per split: 128 held-out ones are ~16 per held-out pair
    samples_per_prompt: int = 8
    seed: int = 0
    # the CLIP trained here in --quick mode (the full run reads a trained one)
    clip_steps: int = 0
    clip_overrides: dict = dataclasses.field(default_factory=dict)


QUICK = Setting(
    n_probe_train=800,
    n_eval=200,
    n_prompts=32,
    samples_per_prompt=4,
    clip_steps=120,
    clip_overrides={  # tests/tasks/test_clip_recipes.py's tiny CLIP, at 24x24
        "trainer.batch_size": 64,
        "trainer.optimizer.lr": 3.0e-3,
        "trainer.schedule.warmup_steps": 10,
        "objective.shapes.shapes.image_size": 24,
        "model.image": {"family": "cnn", "n_channels": 3, "widths": [8, 16, 32], "depths": [1, 1, 1], "groups": 4},
        "model.text.d_model": 32,
        "model.text.n_layers": 2,
        "model.text.d_ff": 64,
        "model.embed_dim": 32,
    },
)


# ---- the CLIP -------------------------------------------------------------------------------------------------
def train_tiny_clip(s: Setting, folder: Path) -> dict:
    """The clip task's recipe, shrunk, trained with the library's Trainer and saved as `formers train` would
    (weights, tokenizer, the recipe in extra.json), so that load_judge reads it like a real run."""
    recipe = load_recipe(
        ROOT / "recipes" / "clip-shapes.yaml",
        {**s.clip_overrides, "trainer.max_steps": s.clip_steps, "trainer.seed": s.seed},
    )
    run = CLIP_TASK.build(recipe)
    t = recipe.trainer
    result = fit(
        run.model,
        run.objective,
        run.train_source,
        steps=s.clip_steps,
        lr=t.optimizer.lr,
        batch_size=t.batch_size,
        schedule=t.schedule,
        weight_decay=t.optimizer.weight_decay,
        seed=s.seed,
    )
    save_model(run.model, folder, run.tokenizer)
    (folder / "extra.json").write_text(json.dumps({"recipe": recipe.to_dict()}))
    return {"source": f"trained here: {s.clip_steps} steps", "final_train_loss": result["history"][-1]["train/loss"]}


# ---- part 1: zero-shot vs linear probes ----------------------------------------------------------------------
@torch.no_grad()
def image_features(scorer: ClipScorer, pixels: torch.Tensor, batch: int = 250) -> dict[str, torch.Tensor]:
    """Normalised pixels (N, C, H, W) -> {"embedding": (N, E) unit, "pooled": (N, D) tower output}."""
    model = scorer.model.eval()
    out = {k: [] for k in FEATURES}
    for x in pixels.split(batch):
        out["embedding"].append(model.encode_image(x))
        out["pooled"].append(model.image_tower(x).pooled.float())
    return {k: torch.cat(v) for k, v in out.items()}


def fit_probe(x: torch.Tensor, y: torch.Tensor, seed: int):
    """Logistic regression on standardised features, its L2 strength picked on a held-back fifth (in distribution),
    then refitted on all of them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = x.numpy(), y.numpy()
    cut = len(y) * 4 // 5

    def probe(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed))

    scores = {c: probe(c).fit(x[:cut], y[:cut]).score(x[cut:], y[cut:]) for c in PROBE_C}
    best = max(PROBE_C, key=lambda c: (scores[c], -c))  # ties go to the stronger regularisation
    return probe(best).fit(x, y), best


def per_class(predicted: torch.Tensor, labels: torch.Tensor, n: int) -> list[float | None]:
    return [(predicted[labels == k] == k).float().mean().item() if (labels == k).any() else None for k in range(n)]


def confusion(predicted: torch.Tensor, labels: torch.Tensor, n: int) -> list[list[int]]:
    """counts[true][predicted]"""
    return torch.bincount(labels * n + predicted, minlength=n * n).reshape(n, n).tolist()


def probes_vs_zero_shot(scorer: ClipScorer, shapes: ShapesConfig, s: Setting) -> dict:
    single = shapes.replace(min_objects=1, max_objects=1)
    train = Shapes(shapes, split="train", seed=0)  # the pixel statistics the CLIP was trained with
    # the probes' images: the training distribution, another stream of images than the evaluation's
    learn = attribute_probes(Shapes(single, split="train", seed=s.seed + 1), train, s.n_probe_train, "")
    learn_x = image_features(scorer, learn[0].pixel_values)
    probes, chosen_c = {}, {}
    for probe in learn:
        for f in FEATURES:
            probes[probe.name, f], chosen_c[f"{probe.name}/{f}"] = fit_probe(learn_x[f], probe.labels, s.seed)
    out: dict = {"probe_C": chosen_c, "splits": {}}
    n_shapes = len(shapes.shapes)
    for name, split in SPLITS.items():
        # attribute_probes on seed 0: the same images (and prompts) as the clip task's own zero-shot report
        evals: list[ZeroShotProbe] = attribute_probes(Shapes(single, split=split, seed=0), train, s.n_eval, "")
        x = image_features(scorer, evals[0].pixel_values)
        result, predicted = {}, {}
        for probe in evals:
            classes = class_embeddings(scorer.text_embeddings, probe.classes, probe.templates)
            guesses = {
                "zero-shot": (x["embedding"] @ classes.T).argmax(-1),
                **{f"probe ({f})": torch.from_numpy(probes[probe.name, f].predict(x[f].numpy())) for f in FEATURES},
            }
            chance = zero_shot_accuracy(x["embedding"], classes, probe.labels)["chance"]
            result[probe.name] = {
                "chance": chance,
                **{
                    m: {
                        "accuracy": (g == probe.labels).float().mean().item(),
                        "per_class": per_class(g, probe.labels, len(probe.classes)),
                        "confusion": confusion(g, probe.labels, len(probe.classes)),
                    }
                    for m, g in guesses.items()
                },
            }
            predicted[probe.name] = guesses
        colour, shape = evals[0].labels, evals[1].labels
        # colour AND shape right: zero-shot over the 64 pair names (the judge) vs the two probes combined
        _, pairs, real = prompts_of(single, split, s.n_eval)
        assert [p[1] for p in pairs] == [shapes.shapes[k] for k in shape.tolist()]  # the same images
        judged = judge_pairs(scorer, real, single.all_pairs)  # colour-major index
        target = colour * n_shapes + shape
        both = {
            "zero-shot (64 pair names)": (judged == target).float().mean().item(),
            "zero-shot (colour and shape apart)": (
                (predicted["colour"]["zero-shot"] == colour) & (predicted["shape"]["zero-shot"] == shape)
            )
            .float()
            .mean()
            .item(),
        }
        for f in FEATURES:
            both[f"probes ({f})"] = (
                ((predicted["colour"][f"probe ({f})"] == colour) & (predicted["shape"][f"probe ({f})"] == shape))
                .float()
                .mean()
                .item()
            )
        result["pair"] = both
        # which colour x shape pairs the shape is read wrong on: per pair present in the split
        shape_by_pair = {}
        for k in sorted(set(target.tolist())):
            rows = target == k
            shape_by_pair[" ".join(single.all_pairs[k])] = {
                "images": int(rows.sum()),
                **{m: (g[rows] == shape[rows]).float().mean().item() for m, g in predicted["shape"].items()},
            }
        result["shape_accuracy_by_pair"] = shape_by_pair
        result["pairs_present"] = sorted({f"{c} {p}" for c, p in pairs})
        out["splits"][name] = result
    return out


# ---- part 2: generated images judged by the CLIP --------------------------------------------------------------
def judge_samples(
    scorer: ClipScorer,
    captions: list[str],
    pairs: list[tuple[str, str]],
    images: torch.Tensor,
    shapes: ShapesConfig,
    real: torch.Tensor,
) -> dict:
    """images (P, N, C, H, W) in [0, 1], N per prompt -> which attributes the judge finds right, per sample and
    for each prompt's sample the CLIP ranks first against its caption; per pair, beside how often the judge
    reads the prompts' real images (P, C, H, W) right: where it cannot, a "wrong" sample may be the judge's error."""
    candidates = shapes.all_pairs
    n_shapes = len(shapes.shapes)
    p, n = images.shape[:2]
    target = torch.tensor([candidates.index(pair) for pair in pairs])  # (P,)
    judged = judge_pairs(scorer, images.flatten(0, 1), candidates).reshape(p, n)  # (P, N)
    colour_ok = judged // n_shapes == (target // n_shapes)[:, None]
    shape_ok = judged % n_shapes == (target % n_shapes)[:, None]
    order = rerank(scorer, captions, images)  # (P, N) best first
    first = order[:, :1]
    real_ok = judge_pairs(scorer, real, candidates) == target  # (P,)

    def kinds(c, sh):
        return {
            "both right": (c & sh).float().mean().item(),
            "colour right, shape wrong": (c & ~sh).float().mean().item(),
            "shape right, colour wrong": (~c & sh).float().mean().item(),
            "both wrong": (~c & ~sh).float().mean().item(),
        }

    by_pair = {}
    for pair in sorted(set(pairs)):
        rows = torch.tensor([q == pair for q in pairs])
        wrong = judged[rows][~shape_ok[rows]] % n_shapes
        drawn = torch.bincount(wrong, minlength=n_shapes)
        by_pair[" ".join(pair)] = {
            "prompts": int(rows.sum()),
            "judge on real images": real_ok[rows].float().mean().item(),
            "both right": (colour_ok & shape_ok)[rows].float().mean().item(),
            "colour right": colour_ok[rows].float().mean().item(),
            "shape right": shape_ok[rows].float().mean().item(),
            "wrong shapes judged": {shapes.shapes[k]: int(drawn[k]) for k in drawn.nonzero().flatten().tolist()},
        }
    return {
        "all samples": kinds(colour_ok, shape_ok),
        "reranked first": kinds(colour_ok.gather(1, first), shape_ok.gather(1, first)),
        "judge on the prompts' real images": real_ok.float().mean().item(),
        "by_pair": by_pair,
        "judged": judged,
        "order": order,
    }


def dalle_part(scorer: ClipScorer, path: str, s: Setting) -> tuple[dict, dict]:
    recipe = checkpoint_recipe(path)
    recipe.objective = recipe.objective.replace(n_prompts=s.n_prompts, samples_per_prompt=s.samples_per_prompt)
    model = load(path)
    measured = measure_prompts(recipe, model, load_tokenizer(path), scorer)  # samples with recipe.sample's settings
    shapes = recipe.objective.shapes
    out, shown = (
        {
            "source": str(path),
            "metrics": measured["metrics"],
            "report": measured["report"],
            "sampling": {k: getattr(recipe.sample, k) for k in ("temperature", "top_k", "top_p", "seed")},
        },
        {},
    )
    for name, split in SPLITS.items():
        captions, generated, _ = measured["samples"][name]
        _, pairs, real = prompts_of(shapes, split, s.n_prompts)
        judged = judge_samples(scorer, captions, pairs, generated, shapes, real)
        # the library's figures and ours come from the same judge and the same samples: they must agree
        assert abs(judged["all samples"]["both right"] - measured["metrics"][f"test/{name}_match"]) < 1e-6
        shown[name] = (captions, generated, judged["order"], judged["judged"], pairs)
        out[name] = {
            k: judged[k] for k in ("all samples", "reranked first", "judge on the prompts' real images", "by_pair")
        }
    return out, shown


def shuffled_captions_part(scorer: ClipScorer, shapes: ShapesConfig, s: Setting) -> tuple[dict, dict]:
    """--quick's stand-in for a DALL-E: per prompt, its own real image (column 0) and real images of other prompts
    (columns 1.., what a model that ignored the caption would draw), judged and reranked as samples are."""
    single = shapes.replace(min_objects=1, max_objects=1)
    out, shown = (
        {
            "source": "no DALL-E in --quick: each prompt's real image vs real images of other prompts "
            "(shuffled captions), through the same judging and reranking code"
        },
        {},
    )
    for name, split in SPLITS.items():
        captions, pairs, real = prompts_of(single, split, s.n_prompts)
        columns = [torch.roll(real, -k * 7, 0) for k in range(s.samples_per_prompt)]  # k=0: the prompt's own
        images = torch.stack(columns, 1)  # (P, N, C, H, W)
        judged = judge_samples(scorer, captions, pairs, images, single, real)
        target = torch.tensor([single.all_pairs.index(p) for p in pairs])
        match = judged["judged"] == target[:, None]
        first = judged["order"][:, 0]
        out[name] = {
            "own image matches": match[:, 0].float().mean().item(),
            "shuffled-caption images match": match[:, 1:].float().mean().item(),
            "reranking picks the own image": (first == 0).float().mean().item(),
            "chance of picking it": 1 / s.samples_per_prompt,
            **{k: judged[k] for k in ("all samples", "reranked first", "by_pair")},
        }
        shown[name] = (captions, images, judged["order"], judged["judged"], pairs)
    return out, shown




def main(argv: list[str] | None = None) -> dict:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--clip", default=None, help="a CLIP run trained on Shapes (recipes/clip-shapes.yaml)")
    extra.add_argument("--dalle", default=None, help="a text-to-image run (recipes/dalle-shapes.yaml)")
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    s = QUICK if args.quick else Setting()
    start = time.process_time()
    torch.manual_seed(s.seed)
    if known.clip is None:
        if not args.quick:
            raise SystemExit(
                "the full study reads a trained CLIP: --clip RUN_DIR (recipes/clip-shapes.yaml); "
                "--quick trains a tiny one"
            )
        folder = args.out / f"{NAME}-clip"
        clip_info = train_tiny_clip(s, folder)
        clip_path = str(folder)
    else:
        clip_path, clip_info = known.clip, {"source": str(known.clip)}
    scorer = load_judge(clip_path)
    shapes = checkpoint_recipe(clip_path).objective.shapes.shapes
    clip_info["cpu_seconds"] = time.process_time() - start
    part1 = probes_vs_zero_shot(scorer, shapes, s)
    for name in SPLITS:
        r = part1["splits"][name]
        print(
            f"{name:8s} "
            + "  ".join(
                f"{a} " + " / ".join(f"{r[a][m]['accuracy']:.3f}" for m in METHODS) for a in ("colour", "shape")
            )
            + "  (zero-shot / probe emb / probe pooled)"
        )
    if known.dalle is not None:
        dalle_shapes = checkpoint_recipe(known.dalle).objective.shapes
        if dalle_shapes.replace(max_objects=1) != shapes.replace(max_objects=1):
            raise SystemExit(f"{known.dalle} was trained on other Shapes than {clip_path}: its judge cannot name them")
        generation, shown = dalle_part(scorer, known.dalle, s)
        print(generation["report"])
    else:
        generation, shown = shuffled_captions_part(scorer, shapes, s)
        for name in SPLITS:
            g = generation[name]
            print(
                f"{name:8s} own image {g['own image matches']:.3f}, shuffled {g['shuffled-caption images match']:.3f}"
                f", rerank picks own {g['reranking picks the own image']:.3f}"
            )
    result = {
        "claim": "CLIP classifies zero-shot from text alone; a linear probe on its frozen image features beats it "
        "in distribution; a CLIP can judge and rerank a DALL-E's samples (tested on held-out colour x shape pairs)",
        "setting": dataclasses.asdict(s),
        "clip": clip_info,
        "zero_shot_vs_probe": part1,
        "generation": generation,
        "cpu_seconds": time.process_time() - start,
    }
    return save(args.out, NAME, result, plot(result, shapes, shown), tight=False)


if __name__ == "__main__":
    main()
