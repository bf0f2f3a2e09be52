"""captioning: describe Shapes images; BLEU-4 and CIDEr-D with greedy and beam search on held-out images.

The model is `family: captioner` (image tower + decoder with cross-attention). Training pairs each image
with one of its captions; evaluation decodes with the one `formers.generate` (greedy, then beam search)
and scores every generated caption against all of the image's references, on the test split (new images
of the training distribution) and the held-out split (colour-shape pairs never seen in training) apart.
"""

from __future__ import annotations

import dataclasses

import torch

from formers.config import check
from formers.data.shapes_batches import CaptionBatches
from formers.generation import generate
from formers.metrics import bleu4, cider_d
from formers.objectives.captioning import CaptionLM, caption_texts
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task, register_task
from formers.tasks.shapes_tasks import EVAL_SPLITS, ShapesTaskConfig, shapes_split, task_tokenizer

WRAP = ("[BOS]", "[EOS]")


@dataclasses.dataclass(kw_only=True)
class CaptioningConfig(ShapesTaskConfig):
    label_smoothing: float = 0.0
    num_beams: int = 3
    max_new_tokens: int = 40
    report_images: int = 256  # images per split decoded for BLEU-4 / CIDEr-D

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.num_beams >= 1, "CaptioningConfig.num_beams", self.num_beams, "a positive int")
        check(self.report_images >= 1, "CaptioningConfig.report_images", self.report_images, "a positive int")


def _captions(recipe: Recipe, split: str, tokenizer, n_images: int | None = None) -> CaptionBatches:
    return CaptionBatches(shapes_split(recipe.objective, split), tokenizer, batch_size=recipe.trainer.batch_size,
                          seed=recipe.trainer.seed, n_images=n_images, wrap=WRAP)


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    return _captions(recipe, "heldout", tokenizer or task_tokenizer()).fixed_batches(recipe.objective.eval_images)


def make_objective(recipe: Recipe) -> CaptionLM:
    return CaptionLM(recipe.objective.label_smoothing)


def build(recipe: Recipe) -> Run:
    tokenizer = task_tokenizer()
    torch.manual_seed(recipe.trainer.seed)
    config = recipe.model.replace(vocab_size=tokenizer.vocab_size,
                                  decoder_start_token_id=tokenizer.token_to_id(WRAP[0]))
    source = _captions(recipe, "train", tokenizer, recipe.objective.n_train_images)
    return Run(model=build_model(config), objective=make_objective(recipe), train_source=source,
               val_batches=eval_data(recipe, tokenizer), tokenizer=tokenizer)


def caption_scores(recipe: Recipe, run: Run, split: str, **options) -> tuple[dict[str, float], list[str]]:
    """BLEU-4 and CIDEr-D of generated captions against all references of each image of `split`."""
    cfg, tok, model = recipe.objective, run.tokenizer, run.model
    data = shapes_split(cfg, split)
    eos = tok.token_to_id(WRAP[1])
    device = next(model.parameters()).device
    generated, references = [], []
    batches = _captions(recipe, split, tok).fixed_batches(cfg.report_images)
    for batch in batches:
        with torch.no_grad():
            rows = generate(model, batch["pixel_values"].to(device), max_new_tokens=cfg.max_new_tokens,
                            eos_token_id=eos, pad_token_id=tok.pad_id or 0, **options)
        generated += caption_texts(tok, rows.cpu(), eos)
        references += [[c.text for c in data.captions(int(i))] for i in batch["image_ids"]]
    return {"bleu4": bleu4(generated, references), "cider_d": cider_d(generated, references)}, generated


def report(recipe: Recipe, run: Run) -> str:
    cfg = recipe.objective
    lines = [f"captioning: {cfg.report_images} images per split, each against its {cfg.shapes.n_captions} "
             "reference captions"]
    for name, options in (("greedy", {}), (f"beam {cfg.num_beams}", {"num_beams": cfg.num_beams})):
        for split in EVAL_SPLITS:
            scores, texts = caption_scores(recipe, run, split, **options)
            lines.append(f"{name:8s} {split:8s} BLEU-4 {scores['bleu4']:.3f}  CIDEr-D {scores['cider_d']:.3f}  "
                         f"e.g. {texts[0]!r}")
    return "\n".join(lines)


register_task("captioning", Task(objective_config=CaptioningConfig, make_objective=make_objective, build=build,
                                 report=report, eval_data=eval_data))
