"""image_tokenizer: a VQ-VAE learns to turn images into a grid of discrete codes and back.

    embedded images (Fashion-MNIST, Digits, or Shapes rendered from a seed) -> VQVAE
        -> ImageReconstruction (pixel / perceptual / adversarial terms + the quantiser's) -> Trainer

The training split loses a seeded `val_fraction` to validation (the Trainer's val/ metrics); the test
split is touched only after training, by `test_metrics`:

  test/psnr, test/ssim        of the reconstructions, in [0, 1] pixel units (formers.evaluate.image_quality;
                              SSIM's 11x11 window, 7x7 on Digits' 8x8 images)
  test/code_usage             distinct codes over the test set / codebook size
  test/perplexity             exp(entropy) of the code histogram over the test set
  test/baseline_psnr, _ssim   the best downsample-quantise-upsample codec of at most the same bits per
                              image (grid cells x log2 K): no learning, the same budget
The model's channels, image size and pixel statistics come from the data.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn

from formers.config import Config, check
from formers.data.images import ImageBatches, ImageSet, eval_image_batches, load_image_dataset
from formers.data.shapes import Shapes, ShapesConfig
from formers.errors import ConfigError
from formers.evaluate.image_quality import SSIM_WINDOW, best_resample_codec, psnr, resample_codec, ssim
from formers.io import load
from formers.nn.quantize import perplexity
from formers.objectives.image_losses import ImageLossConfig
from formers.objectives.reconstruction import ImageReconstruction
from formers.registry import build_model
from formers.tasks.base import Recipe, Run, Task, checkpoint_recipe
from formers.training import distributed

SPLIT_SEED = 0  # the validation images are the same whatever the training seed


@dataclasses.dataclass(kw_only=True)
class ImageTokenizerConfig(Config):
    dataset: Literal["fashion_mnist", "digits", "shapes"] = "fashion_mnist"
    shapes: ShapesConfig = dataclasses.field(default_factory=ShapesConfig)  # dataset: shapes only
    n_train: int | None = None  # images of the training split to use; None = all (Shapes: required)
    n_test: int | None = None  # test images measured after training; None = all (Shapes: required)
    val_fraction: float = 0.05  # of the training images, held out for validation
    losses: ImageLossConfig = dataclasses.field(default_factory=ImageLossConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        where = "ImageTokenizerConfig"
        check(0.0 < self.val_fraction < 1.0, f"{where}.val_fraction", self.val_fraction, "a value in (0, 1)")
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{where}.{name}", value, "a positive int or null")
            check(self.dataset != "shapes" or value is not None, f"{where}.{name}", value,
                  "a count for dataset shapes (its splits are unbounded)")


def image_split(cfg: ImageTokenizerConfig, split: str) -> ImageSet:
    """The dataset's train or test images (the first n_train / n_test), as an ImageSet."""
    n = cfg.n_train if split == "train" else cfg.n_test
    if cfg.dataset == "shapes":
        return Shapes(cfg.shapes, split=split).image_set(n, "count")  # the label is not used
    data = load_image_dataset(cfg.dataset, split)
    return data if n is None else data.subset(slice(0, n))


def train_val_split(cfg: ImageTokenizerConfig) -> tuple[ImageSet, ImageSet]:
    data = image_split(cfg, "train")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = max(1, round(len(data) * cfg.val_fraction))
    return data.subset(order[n_val:]), data.subset(order[:n_val])


def make_objective(recipe: Recipe) -> ImageReconstruction:
    return ImageReconstruction(recipe.objective.losses)


def build(recipe: Recipe) -> Run:
    cfg, t = recipe.objective, recipe.trainer
    train, val = train_val_split(cfg)
    torch.manual_seed(t.seed)
    if recipe.model.family != "vqvae":
        raise ConfigError(f"model.family={recipe.model.family!r} is not an image tokenizer; image_tokenizer "
                          "trains family vqvae")
    config = recipe.model.replace(n_channels=train.n_channels, image_size=train.image_size,
                                  pixel_mean=list(train.mean), pixel_std=list(train.std))
    if config.discriminator is not None:
        config = config.replace(discriminator=config.discriminator.replace(n_channels=train.n_channels))
    return Run(
        model=build_model(config), objective=make_objective(recipe),
        train_source=ImageBatches(train, batch_size=t.batch_size, seed=t.seed, rank=distributed.rank(),
                                  world_size=distributed.world_size()),
        val_batches=eval_image_batches(val, batch_size=t.batch_size, max_batches=t.eval_batches),
    )


def eval_data(recipe: Recipe, tokenizer=None) -> list[dict]:
    _, val = train_val_split(recipe.objective)
    return eval_image_batches(val, batch_size=recipe.trainer.batch_size, max_batches=recipe.trainer.eval_batches)


@torch.no_grad()
def reconstruct(model: nn.Module, data: ImageSet, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's codes (N, h, w) and reconstruction in [0, 1] pixels (N, C, H, W), in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    codes, images = [], []
    for batch in eval_image_batches(data, batch_size=batch_size):
        c = model.encode(batch["pixel_values"].to(device))
        codes.append(c.cpu())
        images.append(model.to_unit_pixels(model.decode(c)).cpu())
    model.train(was_training)
    return torch.cat(codes), torch.cat(images)


def measure(model: nn.Module, data: ImageSet) -> dict:
    """The test figures of the module doc, and the baseline codec's settings."""
    codes, recon = reconstruct(model, data)
    target = data.images.float() / 255.0
    k = model.config.quantizer.codebook_size
    counts = torch.bincount(codes.flatten(), minlength=k).float()
    baseline = best_resample_codec(target, model.config.bits_per_image)
    side = min(target.shape[-2:])
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)  # Digits' 8x8 images take a 7x7 window
    return {
        "test/psnr": psnr(recon, target).mean().item(),
        "test/ssim": ssim(recon, target, window_size=window).mean().item(),
        "test/code_usage": (counts > 0).sum().item() / k, "test/perplexity": perplexity(counts).item(),
        "test/baseline_psnr": baseline["psnr"],
        "test/baseline_ssim": ssim(baseline["reconstruction"], target, window_size=window).mean().item(),
        "baseline": {k: v for k, v in baseline.items() if k != "reconstruction"},
    }


def test_metrics(recipe: Recipe, run: Run) -> dict[str, float]:
    return {k: v for k, v in measure(run.model, image_split(recipe.objective, "test")).items() if k.startswith("test/")}


def report(recipe: Recipe, run: Run) -> str:
    cfg = recipe.objective
    data = image_split(cfg, "test")
    m = measure(run.model, data)
    mc = run.model.config
    b = m["baseline"]
    return "\n".join([
        f"{len(data):,} {cfg.dataset} test images -> {mc.grid_size}x{mc.grid_size} codes of "
        f"{mc.quantizer.codebook_size} = {mc.bits_per_image:.0f} bits per image",
        f"VQ-VAE: PSNR {m['test/psnr']:.2f} dB, SSIM {m['test/ssim']:.4f}; codes used "
        f"{m['test/code_usage']:.1%} of {mc.quantizer.codebook_size}, perplexity {m['test/perplexity']:.1f}",
        f"baseline at {b['bits']} bits ({b['size']}x{b['size']} pixels x {b['bits_per_value']} bits per value, "
        f"{b['mode']} upsampling, the best such codec within the budget): PSNR {m['test/baseline_psnr']:.2f} dB, "
        f"SSIM {m['test/baseline_ssim']:.4f}",
    ])


IMAGE_TOKENIZER = Task(
    objective_config=ImageTokenizerConfig, make_objective=make_objective, build=build, report=report,
    eval_data=eval_data, test_metrics=test_metrics)


def main(argv: list[str] | None = None) -> None:
    """Write a PNG of test images, their VQ-VAE reconstructions and the same-bit baseline codec's."""
    import argparse

    from formers.storage import resolve_checkpoint
    from formers.text_to_image import save_image_grid

    parser = argparse.ArgumentParser(prog="python -m formers.tasks.image_tokenizer", description=main.__doc__)
    parser.add_argument("checkpoint", help="an image_tokenizer run directory or checkpoint")
    parser.add_argument("--figure", required=True, help="the PNG to write")
    parser.add_argument("--n", type=int, default=10, help="test images shown")
    args = parser.parse_args(argv)
    folder = resolve_checkpoint(args.checkpoint)
    recipe = checkpoint_recipe(folder)
    model = load(folder)
    data = image_split(recipe.objective, "test").subset(slice(0, args.n))
    _, recon = reconstruct(model, data)
    target = data.images.float() / 255.0
    b = best_resample_codec(image_split(recipe.objective, "test").images.float() / 255.0, model.config.bits_per_image)
    baseline = resample_codec(target, b["size"], b["bits_per_value"], b["mode"])
    rows = torch.stack([target, recon, baseline])  # (3, n, C, H, W)
    titles = ["original", f"VQ-VAE ({model.config.bits_per_image:.0f} bits)",
              f"{b['size']}x{b['size']} x {b['bits_per_value']} bits, {b['mode']} ({b['bits']} bits)"]
    print(save_image_grid(rows, args.figure, titles))


if __name__ == "__main__":
    main()
