"""Text-to-image sampling with a DALL-E-style model, reranking by a CLIP model, and image grids.

    captions -> [start] words [end] [pad]... (text_len ids) -> formers.generate samples h*w image ids,
    restricted to the image range of the vocabulary by a TokenRange logits processor
    -> the model's VQ-VAE decodes them -> images in [0, 1]

Reranking (Ramesh et al. 2021, section 2.5): draw N samples per caption and keep those a CLIP model
finds most similar to the caption. `ClipScorer` holds what a CLIP checkpoint needs beyond its weights to
read our images and texts: the pixel statistics its images were normalised with and its text wrapping.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from formers.data.images import normalize_pixels
from formers.data.shapes_batches import encode_texts
from formers.errors import ConfigError
from formers.generation import TokenRange, generate

TEXT_WRAP = ("[BOS]", "[EOS]")  # a caption for the decoder reads [BOS] words [EOS], then [PAD] to text_len


def encode_captions(tokenizer, captions: Sequence[str], text_len: int) -> torch.Tensor:
    """Captions -> text ids (B, text_len): [BOS] words [EOS], right-padded with [PAD]; too long is refused."""
    ids, _ = encode_texts(tokenizer, captions, TEXT_WRAP, max_len=text_len)
    return ids


@torch.no_grad()
def sample_images(model: nn.Module, tokenizer, captions: Sequence[str], *, n_samples: int = 1,
                  temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
    """n_samples images per caption: (P, N, C, H, W) in [0, 1], sampled with top-k / top-p."""
    if n_samples < 1:
        raise ConfigError(f"n_samples={n_samples} is not allowed; expected >= 1")
    cfg = model.config
    device = next(model.parameters()).device
    text = encode_captions(tokenizer, captions, cfg.text_len).repeat_interleave(n_samples, 0)  # (P*N, text_len)
    only_images = TokenRange(*model.image_token_range)
    images = []
    for s in range(0, len(text), batch_size):
        out = generate(model, text[s : s + batch_size].to(device), max_new_tokens=cfg.n_image_tokens, do_sample=True,
                       temperature=temperature, top_k=top_k, top_p=top_p, generator=generator,
                       logits_processor=only_images)
        images.append(model.decode_image_tokens(out[:, cfg.text_len :]).cpu())
    return torch.cat(images).reshape(len(captions), n_samples, *images[0].shape[1:])


@dataclasses.dataclass
class ClipScorer:
    """A CLIP model with the pixel statistics and text wrapping it was trained with."""

    model: nn.Module
    tokenizer: object
    mean: tuple[float, ...]
    std: tuple[float, ...]
    wrap: tuple[str, str] = ("[CLS]", "[SEP]")

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """images (N, C, H, W) in [0, 1] -> unit embeddings (N, E)."""
        device = next(self.model.parameters()).device
        out = []
        for s in range(0, len(images), batch_size):
            pixels = normalize_pixels((images[s : s + batch_size] * 255).round().to(torch.uint8), self.mean, self.std)
            out.append(self.model.encode_image(pixels.to(device)).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """texts -> unit embeddings (N, E)."""
        device = next(self.model.parameters()).device
        ids, mask = encode_texts(self.tokenizer, texts, self.wrap)
        return self.model.encode_text(ids.to(device), mask.to(device)).cpu()


def rerank(scorer: ClipScorer, captions: Sequence[str], images: torch.Tensor) -> torch.Tensor:
    """images (P, N, C, H, W) -> for each caption, its samples' indices from most to least similar (P, N)."""
    p, n = images.shape[:2]
    image = scorer.image_embeddings(images.flatten(0, 1)).reshape(p, n, -1)  # (P, N, E)
    text = scorer.text_embeddings(captions)  # (P, E)
    similarity = torch.einsum("pne,pe->pn", image, text)
    return similarity.argsort(dim=1, descending=True)


def save_image_grid(images: torch.Tensor, path: str | Path, titles: Sequence[str] | None = None,
                    *, scale: float = 1.0) -> Path:
    """images (P, N, C, H, W) in [0, 1] -> a PNG with one row per caption (titled) and N columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, n = images.shape[:2]
    fig, axes = plt.subplots(p, n, figsize=(scale * (1.1 * n + 2.2), scale * 1.15 * p), squeeze=False)
    for i in range(p):
        for j in range(n):
            img = images[i, j].permute(1, 2, 0).numpy()
            axes[i, j].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        if titles is not None:
            axes[i, 0].set_ylabel(textwrap.fill(titles[i], 22), rotation=0, ha="right", va="center", fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
