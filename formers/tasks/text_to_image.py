"""text_to_image: a DALL-E-style Transformer learns Shapes captions followed by their images' codes.

    Shapes images (one object each by default) -> a trained VQ-VAE (objective.image_tokenizer, frozen)
        -> codes; captions -> the Shapes word tokenizer -> [caption; codes] sequences (TextImageBatches)
        -> DALLE (a GPT with text + row/column positions) -> TextToImageLM (text and image losses weighted
        apart) -> Trainer

After training, when `objective.judge` names a CLIP checkpoint trained on Shapes, `test_metrics` asks of
generated images what the issue asks: prompts are canonical captions of `n_prompts` test images (colour-
shape pairs seen in training) and `n_prompts` held-out images (pairs never seen, in text or image); each
gets `samples_per_prompt` samples (recipe.sample's temperature / top-k / top-p). The CLIP judges each
sample by zero-shot classification over every colour x shape pair ("an image of a red circle"); a sample
matches when the judged pair is the prompt's. Reported: the share that match, over all samples (before
reranking) and over each prompt's sample the CLIP ranks first against the prompt (after), and the
judge's own accuracy on the prompts' real images (its ceiling). Reranking and judging use the same CLIP
(with different texts), so "after" also measures how far the CLIP agrees with itself; see the README.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from formers.config import Config, check
from formers.data.images import normalize_pixels
from formers.data.shapes import Shapes, ShapesConfig
from formers.data.shapes_text import shapes_tokenizer
from formers.data.text_image import TextImageBatches, fixed_text_image_batches
from formers.errors import ConfigError
from formers.io import load
from formers.objectives.text_to_image import TextToImageLM, TextToImageLMConfig
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task
from formers.tasks.text_to_image_judge import load_judge, measure_prompts
from formers.text_to_image import encode_captions
from formers.training import distributed


@dataclasses.dataclass(kw_only=True)
class TextToImageConfig(Config):
    image_tokenizer: str = "runs/vqvae-shapes"  # a VQ-VAE checkpoint or run directory (image_tokenizer task)
    shapes: ShapesConfig = dataclasses.field(default_factory=lambda: ShapesConfig(max_objects=1))
    n_train: int = 20_000  # training images, each with shapes.n_captions captions
    n_val: int = 500  # test-split images for the validation loss
    lm: TextToImageLMConfig = dataclasses.field(default_factory=TextToImageLMConfig)
    judge: str | None = None  # a CLIP checkpoint trained on Shapes: judges and reranks samples after training
    n_prompts: int = 32  # prompts per split (test, heldout) measured after training
    samples_per_prompt: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_train", "n_val", "n_prompts", "samples_per_prompt"):
            check(getattr(self, name) > 0, f"TextToImageConfig.{name}", getattr(self, name), "a positive int")


def load_image_tokenizer(path: str) -> nn.Module:
    vq = load(path)
    if vq.config.family != "vqvae":
        raise ConfigError(f"objective.image_tokenizer={path!r} holds a {vq.config.family} model; give a "
                          "VQ-VAE checkpoint (formers train recipes/vqvae-shapes.yaml)")
    return vq


@torch.no_grad()
def tokenize_split(model: nn.Module, tokenizer, cfg: TextToImageConfig, split: str, n: int):
    """Images 0..n-1 of a Shapes split -> (caption ids (n, K, text_len), image ids (n, h*w))."""
    data = Shapes(cfg.shapes, split=split)
    vq = model.vqvae
    device = next(model.parameters()).device
    image_ids, text_ids = [], []
    for s in range(0, n, 500):
        rendered = data.render(range(s, min(n, s + 500)))
        pixels = normalize_pixels(rendered.images, vq.config.pixel_mean, vq.config.pixel_std)
        image_ids.append(model.image_tokens(pixels.to(device)).cpu())
        captions = [c.text for i, (objs, _) in zip(range(s, n), rendered.scenes, strict=False)
                    for c in data.captions(i, objs)]
        text_ids.append(encode_captions(tokenizer, captions, model.config.text_len).reshape(len(rendered.images),
                                                                                             -1, model.config.text_len))
    return torch.cat(text_ids), torch.cat(image_ids)


def make_objective(recipe: Recipe) -> TextToImageLM:
    return TextToImageLM(recipe.objective.lm, text_len=recipe.model.text_len, pad_id=shapes_tokenizer().pad_id)


def build_dalle(recipe: Recipe, tokenizer) -> nn.Module:
    """The recipe's DALLE around the trained VQ-VAE (its weights copied in, its discriminator left out)."""
    if recipe.model.family != "dalle":
        raise ConfigError(f"model.family={recipe.model.family!r} is not allowed for task text_to_image; use dalle")
    vq = load_image_tokenizer(recipe.objective.image_tokenizer)
    torch.manual_seed(recipe.trainer.seed)
    config = recipe.model.replace(text_vocab_size=tokenizer.vocab_size, vqvae=vq.config.replace(discriminator=None))
    model = build_model(config)
    state = {k: v for k, v in vq.state_dict().items() if not k.startswith("discriminator.")}
    model.vqvae.load_state_dict(state)
    return model


def build(recipe: Recipe) -> Run:
    cfg, t = recipe.objective, recipe.trainer
    tokenizer = shapes_tokenizer()
    model = build_dalle(recipe, tokenizer)
    train_text, train_images = tokenize_split(model, tokenizer, cfg, "train", cfg.n_train)
    return Run(
        model=model, objective=make_objective(recipe), tokenizer=tokenizer,
        train_source=TextImageBatches(train_text, train_images, batch_size=t.batch_size, seed=t.seed,
                                      rank=distributed.rank(), world_size=distributed.world_size()),
        val_batches=eval_data(recipe, tokenizer, model),
    )


def eval_data(recipe: Recipe, tokenizer, model: nn.Module | None = None) -> list[dict]:
    """Test-split images with their canonical captions (the checkpoint's tokenizer and VQ-VAE)."""
    cfg, t = recipe.objective, recipe.trainer
    model = model if model is not None else build_dalle(recipe, tokenizer)
    text, images = tokenize_split(model, tokenizer, cfg, "test", cfg.n_val)
    return fixed_text_image_batches(text, images, batch_size=t.batch_size, max_batches=t.eval_batches)


def test_metrics(recipe: Recipe, run: Run) -> dict[str, float]:
    if recipe.objective.judge is None:
        return {}
    return measure_prompts(recipe, run.model, run.tokenizer, load_judge(recipe.objective.judge))["metrics"]


def report(recipe: Recipe, run: Run) -> str:
    cfg = recipe.objective
    if cfg.judge is None:
        return "no objective.judge (a CLIP checkpoint trained on Shapes): generated images were not judged"
    return measure_prompts(recipe, run.model, run.tokenizer, load_judge(cfg.judge))["report"]


TEXT_TO_IMAGE = Task(
    objective_config=TextToImageConfig, make_objective=make_objective, build=build, report=report,
    eval_data=eval_data, test_metrics=test_metrics)
