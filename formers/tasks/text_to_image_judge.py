"""Judging generated Shapes images with a CLIP model: does a sample show the prompt's colour and shape?

A sample is judged by zero-shot classification over every colour x shape pair of the Shapes config,
each named by the Shapes "image of" template's three wordings ("an image of a red circle", "a picture
of ...", "a drawing of ..."; prompt ensembling as formers.evaluate does it), and matches when the judged
pair is the prompt's. `measure_prompts` does this for prompts of seen and of
held-out pairs, before and after reranking, and beside the judge's accuracy on the prompts' real images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_text import IMAGE_OF, _article
from formers.errors import ConfigError
from formers.evaluate import class_embeddings
from formers.io import load, load_tokenizer
from formers.storage import resolve_checkpoint
from formers.tasks.base import checkpoint_recipe
from formers.text_to_image import ClipScorer, rerank, sample_images

PAIR_TEMPLATES = tuple(f"{words} {{}}" for words in IMAGE_OF)  # "an image of {}" + "a red circle", "an orange ring"
SPLITS = {"seen": "test", "heldout": "heldout"}  # what the figures call them -> the Shapes split


def load_judge(path: str) -> ClipScorer:
    """A CLIP checkpoint written by `formers train recipes/clip-shapes.yaml`, with the pixel statistics and
    text wrapping of the data it was trained on (read from the recipe saved beside its weights)."""
    folder = resolve_checkpoint(path)
    recipe = checkpoint_recipe(folder)
    if recipe.task != "clip" or getattr(recipe.objective, "data", None) != "shapes":
        raise ConfigError(f"{path} is not a CLIP trained on Shapes (task {recipe.task!r}); train one with "
                          "recipes/clip-shapes.yaml")
    mean, std = Shapes(recipe.objective.shapes.shapes, split="train").stats  # what the CLIP's images were divided by
    return ClipScorer(load(folder).eval(), load_tokenizer(folder), mean, std, tuple(recipe.objective.text_wrap))


def pair_candidates(shapes: ShapesConfig) -> list[tuple[str, str]]:
    return shapes.all_pairs


@torch.no_grad()
def judge_pairs(scorer: ClipScorer, images: torch.Tensor, candidates: Sequence[tuple[str, str]]) -> torch.Tensor:
    """images (N, C, H, W) in [0, 1] -> index into `candidates` of the pair the CLIP finds most similar (N,),
    each pair's embedding an ensemble of PAIR_TEMPLATES (formers.evaluate.class_embeddings)."""
    names = [_article(f"{c} {s}") for c, s in candidates]  # "a red circle", "an orange ring": as captions say it
    classes = class_embeddings(scorer.text_embeddings, names, PAIR_TEMPLATES)
    return (scorer.image_embeddings(images) @ classes.T).argmax(dim=1)


def prompts_of(shapes: ShapesConfig, split: str, n: int) -> tuple[list[str], list[tuple[str, str]], torch.Tensor]:
    """The canonical captions of images 0..n-1 of a split, their objects' (colour, shape), the images in [0, 1]."""
    data = Shapes(shapes, split=split)
    rendered = data.render(range(n))
    captions = [data.captions(i, objs)[0].text for i, (objs, _) in enumerate(rendered.scenes)]
    pairs = [(objs[0].colour, objs[0].shape) for objs, _ in rendered.scenes]
    return captions, pairs, rendered.images.float() / 255.0


def measure_prompts(recipe, model: nn.Module, tokenizer, scorer: ClipScorer) -> dict:
    """{"metrics": {"test/...": share}, "report": text, "samples": {name: (captions, images (P, N, C, H, W),
    order (P, N))}}; see the module doc."""
    cfg, s = recipe.objective, recipe.sample
    if cfg.shapes.max_objects != 1:
        raise ConfigError(f"objective.shapes.max_objects={cfg.shapes.max_objects}: judging names one object per "
                          "image; measure with max_objects: 1")
    candidates = pair_candidates(cfg.shapes)
    generator = torch.Generator(next(model.parameters()).device).manual_seed(s.seed)
    metrics, lines, samples = {}, [], {}
    for name, split in SPLITS.items():
        captions, pairs, real = prompts_of(cfg.shapes, split, cfg.n_prompts)
        images = sample_images(model, tokenizer, captions, n_samples=cfg.samples_per_prompt,
                               temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, generator=generator)
        p, n = images.shape[:2]
        target = torch.tensor([candidates.index(pair) for pair in pairs])  # (P,)
        judged = judge_pairs(scorer, images.flatten(0, 1), candidates).reshape(p, n)  # (P, N)
        match = judged == target[:, None]
        order = rerank(scorer, captions, images)  # (P, N), best first
        best = match[torch.arange(p), order[:, 0]]
        colours = torch.tensor([candidates.index((c, s)) // len(cfg.shapes.shapes) for c, s in pairs])  # (P,)
        colour_ok = judged // len(cfg.shapes.shapes) == colours[:, None]  # all_pairs is colour-major
        shape_ok = judged % len(cfg.shapes.shapes) == target[:, None] % len(cfg.shapes.shapes)
        real_ok = judge_pairs(scorer, real, candidates) == target
        metrics |= {f"test/{name}_match": match.float().mean().item(),
                    f"test/{name}_match_reranked": best.float().mean().item(),
                    f"test/{name}_judge_real": real_ok.float().mean().item()}
        lines.append(f"{name} pairs ({p} prompts x {n} samples): colour and shape right {match.float().mean():.3f} "
                     f"(colour {colour_ok.float().mean():.3f}, shape {shape_ok.float().mean():.3f}); CLIP's first of "
                     f"{n}: {best.float().mean():.3f}; the judge on the prompts' real images: "
                     f"{real_ok.float().mean():.3f}")
        samples[name] = (captions, images, order)
    return {"metrics": metrics, "report": "\n".join(lines), "samples": samples}


def main(argv: Sequence[str] | None = None) -> dict:
    """Measure a trained text-to-image run with a CLIP judge and write the held-out prompts' samples as a grid."""
    import argparse

    from formers.text_to_image import save_image_grid

    parser = argparse.ArgumentParser(prog="python -m formers.tasks.text_to_image_judge", description=main.__doc__)
    parser.add_argument("checkpoint", help="a text_to_image run directory or checkpoint")
    parser.add_argument("--judge", required=True, help="a CLIP checkpoint trained on Shapes")
    parser.add_argument("--grid", default=None, help="PNG of held-out and seen prompts, samples best-first by CLIP")
    parser.add_argument("--rows", type=int, default=6, help="prompts per split in the grid")
    args = parser.parse_args(argv)
    folder = resolve_checkpoint(args.checkpoint)
    recipe = checkpoint_recipe(folder)
    result = measure_prompts(recipe, load(folder), load_tokenizer(folder), load_judge(args.judge))
    print(result["report"])
    for key, value in sorted(result["metrics"].items()):
        print(f"{key}: {value:.4f}")
    if args.grid:
        rows, titles = [], []
        for name, (captions, images, order) in result["samples"].items():
            for i in range(min(args.rows, len(captions))):
                rows.append(images[i, order[i]])
                titles.append(f"{captions[i]} ({name})")
        print(save_image_grid(torch.stack(rows), args.grid, titles))
    return result


if __name__ == "__main__":
    main()
