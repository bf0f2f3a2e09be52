"""Claim: pixel losses blur reconstructions; perceptual and adversarial terms make them sharper.

The same VQ-VAE image tokenizer (Fashion-MNIST 28x28 -> 7x7 codes of 256 -> 28x28; van den Oord et al.
2017) trained five times, the loss the only change (formers/objectives/image_losses.py):

    L2                                   the Gaussian likelihood of the VQ-VAE paper
    L1                                   Isola et al. 2017 (pix2pix) use it because it "encourages less blurring"
    L1 + perceptual                      feature distances of a frozen CNN (Johnson et al. 2016; LPIPS-style)
    L1 + perceptual + GAN                a PatchGAN, hinge loss, VQGAN's adaptive weight (Esser et al. 2021)
    L1 + perceptual + GAN + style        Gram matrices of the same features (Gatys et al. 2016)

Every model is judged on held-out test images: PSNR and SSIM (distortion) and sharpness, as the variance
of the Laplacian and as the share of spectral energy above half the Nyquist frequency, each divided by
the same measure of the original images (1 = as sharp as the data). The pixel losses' optimum under
uncertainty is an average of plausible images, i.e. a blur (Mathieu et al. 2016); the other terms
reward what a blur lacks, at some cost in PSNR (the perception-distortion trade-off, Blau & Michaeli 2018).

The perceptual network is the ResNet-style CNN of recipes/cnn-fashion-mnist.yaml (`--features RUN_DIR`);
without one the study trains that CNN on Fashion-MNIST labels first (no pretrained VGG exists offline).

    .venv/bin/python -m studies.image_losses --out studies/figures        # ~20 min CPU, one thread
    .venv/bin/python -m studies.image_losses --quick --out /tmp/losses    # ~1 min
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from formers.data.images import ImageBatches, eval_image_batches, load_fashion_mnist
from formers.evaluate.image_quality import high_frequency_energy, laplacian_variance, psnr, ssim
from formers.io import load
from formers.models import CNN, VQVAE, CNNConfig, PatchGANConfig, VQVAEConfig
from formers.nn.quantize import QuantizerConfig
from formers.objectives.causal_lm import token_cross_entropy
from formers.objectives.image_losses import CNN_LAYERS, FeatureNetwork, ImageLossConfig
from formers.objectives.reconstruction import ImageReconstruction
from formers.optim import ScheduleConfig
from formers.storage import save_model
from studies.common import fit, pyplot, save, study_args

NAME = "image_losses"


@dataclasses.dataclass
class Setting:
    n_train: int = 20_000
    n_test: int = 1_000
    hidden: int = 64
    codebook_size: int = 256
    steps: int = 1_500
    batch_size: int = 32
    lr: float = 1e-3
    # weights that give the terms comparable sizes, measured on test images against 3x3 / 5x5 box-blurred
    # copies (the CNN below, 300 steps): L1 0.22 / 0.32, perceptual 0.71 / 1.26, style 0.09 / 0.20
    perceptual: float = 0.25
    adversarial: float = 0.2  # times VQGAN's adaptive weight (~0.7-1.3 here)
    style: float = 1.0
    disc_width: int = 32
    classifier_steps: int = 600  # when no --features checkpoint is given
    classifier_widths: tuple[int, ...] = (32, 64, 128)  # recipes/cnn-fashion-mnist.yaml's
    seed: int = 0


QUICK = Setting(n_train=2_000, n_test=100, hidden=32, steps=80, batch_size=32, disc_width=16, classifier_steps=30,
                classifier_widths=(16, 32, 64))
SHORT = {"L2": "L2", "L1": "L1", "L1 + perceptual": "L1+P", "L1 + perceptual + GAN": "L1+P+GAN",
         "L1 + perceptual + GAN + style": "L1+P+GAN+S"}


def plain_setting(s: Setting) -> dict:
    """The setting as it reads back from JSON (tuples become lists), to compare with a saved one."""
    return json.loads(json.dumps(dataclasses.asdict(s)))


def variants(s: Setting) -> dict[str, ImageLossConfig]:
    l1 = dict(l1=1.0, l2=0.0)
    return {
        "L2": ImageLossConfig(l2=1.0),
        "L1": ImageLossConfig(**l1),
        "L1 + perceptual": ImageLossConfig(**l1, perceptual=s.perceptual),
        "L1 + perceptual + GAN": ImageLossConfig(**l1, perceptual=s.perceptual, adversarial=s.adversarial),
        "L1 + perceptual + GAN + style": ImageLossConfig(**l1, perceptual=s.perceptual, adversarial=s.adversarial,
                                                         style=s.style),
    }


def feature_network(path: Path | None, train, s: Setting, cache: Path) -> tuple[FeatureNetwork, dict]:
    """The recipe's CNN from a checkpoint, or the same CNN trained here on the labels for a few hundred steps
    (kept in `cache`, so a rerun reuses it)."""
    if path is not None:
        return FeatureNetwork(load(path), CNN_LAYERS), {"source": str(path)}
    if (cache / "info.json").is_file():
        info = json.loads((cache / "info.json").read_text())
        if info.get("setting") == plain_setting(s):
            return FeatureNetwork(load(cache), CNN_LAYERS), info["info"]
    torch.manual_seed(s.seed)
    cnn = CNN(CNNConfig(n_channels=1, widths=list(s.classifier_widths), depths=[1, 1, 1], n_classes=10))
    classify = lambda model, batch: token_cross_entropy(model(batch["pixel_values"]).logits, batch["labels"])  # noqa: E731
    test = load_fashion_mnist("test")
    result = fit(cnn, classify, ImageBatches(train, batch_size=64, seed=s.seed), steps=s.classifier_steps, lr=3e-3,
                 batch_size=64, val_batches=eval_image_batches(test, batch_size=500, max_batches=4),
                 schedule=ScheduleConfig(kind="cosine", warmup_steps=s.classifier_steps // 10))
    accuracy = result["last_eval"]["val/accuracy"]
    print(f"feature CNN trained here: {s.classifier_steps} steps, test accuracy {accuracy:.3f} on 2,000 images")
    info = {"source": f"trained here, {s.classifier_steps} steps", "test_accuracy": accuracy}
    save_model(cnn, cache)
    (cache / "info.json").write_text(json.dumps({"setting": plain_setting(s), "info": info}))
    return FeatureNetwork(cnn, CNN_LAYERS), info


def autoencoder(s: Setting, losses: ImageLossConfig, stats) -> VQVAE:
    torch.manual_seed(s.seed)  # the same initial autoencoder for every loss
    disc = PatchGANConfig(n_channels=1, width=s.disc_width, n_layers=2) if losses.adversarial > 0 else None
    config = VQVAEConfig(n_channels=1, image_size=28, hidden=s.hidden, pixel_mean=list(stats[0]),
                         pixel_std=list(stats[1]), discriminator=disc,
                         quantizer=QuantizerConfig(codebook_size=s.codebook_size, code_dim=32, usage_decay=0.95))
    return VQVAE(config)


@torch.no_grad()
def judge(model: VQVAE, test) -> tuple[dict, torch.Tensor]:
    model.eval()
    target = test.images.float() / 255.0
    recon = torch.cat([model.to_unit_pixels(model.decode(model.encode(b["pixel_values"])))
                       for b in eval_image_batches(test, batch_size=250)])
    sharp = laplacian_variance(recon).mean() / laplacian_variance(target).mean()
    high = high_frequency_energy(recon).mean() / high_frequency_energy(target).mean()
    return {"psnr": psnr(recon, target).mean().item(), "ssim": ssim(recon, target).mean().item(),
            "laplacian_ratio": sharp.item(), "high_frequency_ratio": high.item()}, recon


def plot(runs: dict, originals: torch.Tensor, images: dict[str, torch.Tensor]):
    plt = pyplot()
    n = 8
    fig = plt.figure(figsize=(13, 5.4))
    grid = fig.add_gridspec(len(images) + 1, n, right=0.6, wspace=0.08, hspace=0.12)
    rows = {"original": originals, **images}
    for r, (name, imgs) in enumerate(rows.items()):
        for c in range(n):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(imgs[c, 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(SHORT.get(name, name), rotation=0, ha="right", va="center", fontsize=8)
    names = list(runs)
    colours = ["#999", "#666", "#4a8", "#48c", "#c74"][: len(names)]
    bars = fig.add_gridspec(2, 1, left=0.72, right=0.95, hspace=0.35)  # its own spacing: titles need room
    for i, (key, label) in enumerate((("psnr", "PSNR (dB), higher = closer"),
                                      ("laplacian_ratio", "sharpness: Laplacian variance / the data's"))):
        ax = fig.add_subplot(bars[i])
        values = [runs[m][key] for m in names]
        ax.barh(range(len(names)), values, color=colours)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([SHORT.get(m, m) for m in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
        lo = min(values)
        ax.set_xlim(0 if key != "psnr" else lo - 2, max(values) * 1.15 if key != "psnr" else max(values) + 1)
        if key == "laplacian_ratio":
            ax.axvline(1.0, color="k", ls=":", lw=1)
            ax.set_xlim(0, max(1.1, max(values) * 1.15))
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> dict:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--features", type=Path, default=None, help="run dir of recipes/cnn-fashion-mnist.yaml")
    known, rest = extra.parse_known_args(argv)
    args = study_args(__doc__, rest, NAME)
    s = QUICK if args.quick else Setting()
    full = load_fashion_mnist("train")
    train, test = full.subset(slice(0, s.n_train)), load_fashion_mnist("test").subset(slice(0, s.n_test))
    features, feature_info = feature_network(known.features, train, s, args.out / f"{NAME}-features")
    runs, images = {}, {}
    partial = args.out / f"{NAME}.partial.json"  # finished losses, kept so that a killed run resumes
    done = json.loads(partial.read_text()) if partial.is_file() else {}
    if done.get("setting") != plain_setting(s) or done.get("feature_network") != feature_info:
        done = {"setting": plain_setting(s), "feature_network": feature_info, "runs": {}, "images": {}}
    for name, losses in variants(s).items():
        if name in done["runs"]:
            runs[name], images[name] = done["runs"][name], torch.tensor(done["images"][name])
            print(f"{name:32s} (measured before, read from {partial})")
            continue
        start = time.process_time()
        model = autoencoder(s, losses, (train.mean, train.std))
        objective = ImageReconstruction(losses, features)
        fit(model, objective, ImageBatches(train, batch_size=s.batch_size, seed=s.seed), steps=s.steps, lr=s.lr,
            batch_size=s.batch_size, schedule=ScheduleConfig(kind="cosine", warmup_steps=s.steps // 20), seed=s.seed)
        runs[name], recon = judge(model, test)
        images[name] = recon[:8]
        r = runs[name]
        r["cpu_seconds"] = time.process_time() - start
        print(f"{name:32s} PSNR {r['psnr']:.2f}  SSIM {r['ssim']:.3f}  "
              f"sharpness (Laplacian) x{r['laplacian_ratio']:.2f}  "
              f"high-frequency energy x{r['high_frequency_ratio']:.2f}  ({r['cpu_seconds']:.0f} CPU s)")
        done["runs"][name], done["images"][name] = r, images[name].tolist()
        partial.write_text(json.dumps(done))
    result = {"claim": "pixel losses blur; perceptual and adversarial terms sharpen (at some cost in PSNR)",
              "setting": dataclasses.asdict(s), "feature_network": feature_info, "runs": runs}
    return save(args.out, NAME, result, plot(runs, test.images[:8].float() / 255.0, images), tight=False)


if __name__ == "__main__":
    main()
