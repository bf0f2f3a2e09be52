"""vlp: vision-language pretraining on Shapes (ITC + ITM with mined and hard negatives + MLM [+ MIM]).

With `mlm_weight: 0` (and ITC kept: it ranks the negatives ITM mines) this is the image-text matching
task. The model is `family: vlp` (formers.models.vlp) around a VisualBERT trunk with an image tower.
Validation runs on held-out colour-shape combinations; the report gives ITM accuracy on each kind of pair
(positives, negatives mined from ITC similarities, the dataset's one-attribute hard negatives, and easy
negatives drawn uniformly from other groups) on the test and held-out splits, and image -> text recall@1
of ITC alone and of ITC's top 4 reranked by ITM.
"""

from __future__ import annotations

import dataclasses

import torch

from formers.data.shapes_batches import MatchingBatches
from formers.objectives.matching import VisionLanguagePretraining, VLPObjectiveConfig, rerank_retrieval
from formers.registry import build_model
from formers.storage import load_model_weights, resolve_checkpoint
from formers.tasks.base import Recipe, Run, Task
from formers.tasks.shapes_tasks import EVAL_SPLITS, ShapesTaskConfig, shapes_split, task_tokenizer


@dataclasses.dataclass(kw_only=True)
class VLPTaskConfig(ShapesTaskConfig, VLPObjectiveConfig):
    rerank_k: int = 4  # ITC candidates the ITM head reranks in the report's retrieval
    # a vlp checkpoint or run whose weights start the model (pretraining on many pairs, then fine-tuning for
    # retrieval on few: `n_train_images`); None = random init. The model configs must agree (refused otherwise).
    init_from: str | None = None


def _matching(recipe: Recipe, split: str, tokenizer, n_images: int | None = None) -> MatchingBatches:
    return MatchingBatches(shapes_split(recipe.objective, split), tokenizer, batch_size=recipe.trainer.batch_size,
                           seed=recipe.trainer.seed, n_images=n_images)


def split_batches(recipe: Recipe, split: str, tokenizer=None) -> list[dict]:
    return _matching(recipe, split, tokenizer or task_tokenizer()).fixed_batches(recipe.objective.eval_images)


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    return split_batches(recipe, "heldout", tokenizer)


def make_objective(recipe: Recipe) -> VisionLanguagePretraining:
    tok = task_tokenizer()
    config = VLPObjectiveConfig(**{f.name: getattr(recipe.objective, f.name)
                                   for f in dataclasses.fields(VLPObjectiveConfig)})
    specials = [tok.pad_id, tok.cls_id, tok.sep_id, tok.mask_id, tok.unk_id]
    return VisionLanguagePretraining(config, mask_id=tok.mask_id, vocab_size=tok.vocab_size, special_ids=specials)


def build(recipe: Recipe) -> Run:
    tokenizer = task_tokenizer()
    torch.manual_seed(recipe.trainer.seed)
    trunk = recipe.model.trunk.replace(vocab_size=tokenizer.vocab_size)
    model = build_model(recipe.model.replace(trunk=trunk))
    if recipe.objective.init_from is not None:
        load_model_weights(model, resolve_checkpoint(recipe.objective.init_from))
    source = _matching(recipe, "train", tokenizer, recipe.objective.n_train_images)
    return Run(model=model, objective=make_objective(recipe), train_source=source,
               val_batches=eval_data(recipe, tokenizer), tokenizer=tokenizer)


def evaluate_splits(recipe: Recipe, run: Run) -> dict[str, dict[str, float]]:
    """split -> ITM accuracy by pair kind, ITC accuracy, MLM accuracy, and retrieval recall."""
    objective, model = run.objective, run.model
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {}
    for split in EVAL_SPLITS:
        sums: dict[str, float] = {}
        batches = split_batches(recipe, split, run.tokenizer)
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                metrics = {k: float(v) for k, v in objective(model, batch).items()}
            metrics.update(rerank_retrieval(model, batch, recipe.objective.rerank_k))
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v / len(batches)
        out[split] = sums
    model.train(was)
    return out


def report(recipe: Recipe, run: Run) -> str:
    results = evaluate_splits(recipe, run)
    keys = sorted({k for m in results.values() for k in m if "accuracy" in k or "recall" in k})
    lines = [f"image-text matching ({recipe.objective.eval_images} images per split, batches of "
             f"{recipe.trainer.batch_size}; easy = a uniformly drawn caption of another image group, "
             "hard = the caption with one attribute changed, mined = drawn by ITC similarity)"]
    for key in keys:
        lines.append(f"{key:32s}" + "".join(f"  {split}: {results[split].get(key, float('nan')):.3f}"
                                             for split in results))
    return "\n".join(lines)


VLP_TASK = Task(objective_config=VLPTaskConfig, make_objective=make_objective, build=build,
                          report=report, eval_data=eval_data)
