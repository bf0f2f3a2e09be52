"""Images as token sequences: pixel checks, patch embedding, 2-D positions, a [CLS] and a mask token.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words": cut the image into non-overlapping
p x p patches, project each to a D-vector, add a position per patch, and the same Transformer
blocks that read text read the image (a new modality is a new input embedding, not a new stack).

  check_pixels        refuse pixel tensors a model cannot read (rank, channels, dtype, size)
  PatchEmbedding      Conv2d with kernel = stride = p: one linear map per patch (Hugging Face's layout);
                      or overlapping patches, kernel p + 2m at stride p (the same grid)
  ConvStem            log2(p) stride-2 3x3 convs + BatchNorm + ReLU, then a 1x1 conv to D: the same grid
                      (Xiao et al. 2021, "Early convolutions help transformers see better")
  ClassToken          a learned [CLS] vector put in front of the patches
  MaskToken           a learned vector that replaces masked patches (BEiT, SimMIM; HF `bool_masked_pos`)
  LearnedPatchPositions, SinCos2dPositions   (1, prefix + h*w, D) for any grid of h x w patches
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from formers.errors import ImageInputError
from formers.nn.embeddings import sinusoid_table


def check_pixels(
    pixel_values: torch.Tensor, n_channels: int, *, multiple_of: int = 1, size: int | None = None
) -> tuple[int, int]:
    """Refuse anything but float (B, C, H, W) with the model's C, H and W multiples of `multiple_of`,
    and (when `size` is given) H = W = size; returns (H, W)."""
    if pixel_values.dim() != 4:
        fix = " (one image: add a batch dimension with x[None])" if pixel_values.dim() == 3 else ""
        raise ImageInputError(f"pixel_values must be (B, C, H, W); got shape {tuple(pixel_values.shape)}{fix}")
    if not pixel_values.is_floating_point():
        raise ImageInputError(f"pixel_values must be a float tensor normalised by the dataset's mean/std; got "
                              f"{pixel_values.dtype}: convert uint8 images with x.float() / 255, then normalise")
    _, c, h, w = pixel_values.shape
    if c != n_channels:
        raise ImageInputError(f"pixel_values have {c} channels but the model reads {n_channels}; "
                              f"pass (B, {n_channels}, H, W) images, channels first")
    if h % multiple_of or w % multiple_of:
        raise ImageInputError(f"an image of {h}x{w} pixels does not split into {multiple_of}x{multiple_of} "
                              f"patches; crop or pad it to multiples of {multiple_of} "
                              f"(e.g. {h // multiple_of * multiple_of}x{w // multiple_of * multiple_of})")
    if size is not None and (h, w) != (size, size):
        raise ImageInputError(f"an image of {h}x{w} pixels does not match the model's image_size={size}; "
                              f"resize it to {size}x{size} or pass interpolate_pos_encoding=True")
    return h, w


class PatchEmbedding(nn.Module):
    """(B, C, H, W) -> (B, (H/p)(W/p), D), patches in row-major order: W x_patch + b (Dosovitskiy eq. 1).

    A Conv2d with kernel = stride = p is exactly a shared linear map of each flattened patch, and its
    weight is laid out as Hugging Face's ViT stores it. `overlap` m > 0 widens each patch by m pixels on
    every side (kernel p + 2m, stride p, zero padding m: the grid is unchanged), so that neighbouring
    tokens share pixels and an edge cut by a patch border is seen whole by both ("overlapping patch
    embedding", Wang et al. 2022, PVT v2; also Xiao et al. 2021, "Early convolutions help transformers
    see better"). It costs one larger conv and helps most where data is small."""

    def __init__(self, n_channels: int, d_model: int, patch_size: int, bias: bool = True, overlap: int = 0) -> None:
        super().__init__()
        self.patch_size = patch_size
        # CLIP's patch conv has no bias (its ln_pre follows and would remove a constant shift anyway)
        self.projection = nn.Conv2d(n_channels, d_model, kernel_size=patch_size + 2 * overlap, stride=patch_size,
                                    padding=overlap, bias=bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # the weight's dtype: bf16-pure models read fp32 batches (autocast still picks its own dtype)
        x = self.projection(pixel_values.to(self.projection.weight.dtype))  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ConvStem(nn.Module):
    """(B, C, H, W) -> (B, (H/p)(W/p), D) through a small convolutional stem instead of one patchify conv.

    Xiao et al. 2021 ("Early convolutions help transformers see better", the ViT_C stem): log2(p) 3x3 convs
    of stride 2, each followed by BatchNorm and ReLU, channels doubling up to D/2, then a 1x1 conv to D.
    The patchify conv is one large-stride linear map, which the paper finds makes ViTs sensitive to the
    optimiser and slow to converge; the stem gives the same grid of tokens at a few percent of the model's
    compute, and trains faster and more stably. p must be a power of two (one halving per conv)."""

    def __init__(self, n_channels: int, d_model: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        n_convs = patch_size.bit_length() - 1  # patch_size = 2 ** n_convs
        widths = [d_model >> (n_convs - i) for i in range(n_convs)]  # ..., D/4, D/2 (ViT_C's 48..384 for 768)
        layers: list[nn.Module] = []
        c_in = n_channels
        for width in widths:
            # bias-free: the BatchNorm that follows subtracts any constant (He et al. 2016's ResNet convention)
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            c_in = width
        layers.append(nn.Conv2d(c_in, d_model, kernel_size=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = self.layers(pixel_values.to(self.layers[0].weight.dtype))  # (B, D, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)


class ClassToken(nn.Module):
    """A learned vector in front of the patches; its final state summarises the image (BERT's [CLS])."""

    n_prefix = 1

    def __init__(self, d_model: int, std: float = 0.02) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, d_model) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.to(x.dtype).expand(x.shape[0], -1, -1), x], dim=1)  # (B, 1 + N, D)


class NoClassToken(nn.Module):
    """No [CLS]: the patches alone (mean pooling reads them all; Beyer et al. 2022)."""

    n_prefix = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class MaskToken(nn.Module):
    """Masked patches (bool_masked_pos (B, N), True = masked) replaced by one learned vector, before
    [CLS] and positions are added, so a masked patch keeps its position (BEiT, Bao et al. 2022; SimMIM)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, d_model))

    def forward(self, x: torch.Tensor, bool_masked_pos: torch.Tensor | None) -> torch.Tensor:
        if bool_masked_pos is None:
            return x
        if tuple(bool_masked_pos.shape) != tuple(x.shape[:2]):
            raise ImageInputError(f"bool_masked_pos has shape {tuple(bool_masked_pos.shape)} but the images have "
                                  f"{x.shape[1]} patches each; pass (B, N) = {tuple(x.shape[:2])}, True = masked")
        return torch.where(bool_masked_pos.bool()[..., None], self.token.to(x.dtype), x)  # (B, N, D)


class NoMaskToken(nn.Module):
    """A model built without a mask token refuses masks instead of ignoring them."""

    def forward(self, x: torch.Tensor, bool_masked_pos: torch.Tensor | None) -> torch.Tensor:
        if bool_masked_pos is not None:
            raise ImageInputError("this model has no mask token, so it cannot take bool_masked_pos; "
                                  "build it with mask_token=True")
        return x


class LearnedPatchPositions(nn.Module):
    """A trained vector per patch of a g x g grid (and per [CLS]), as one (1, prefix + g*g, D) table.

    Another grid gets the table resized by bicubic interpolation, exactly as Hugging Face's ViT
    `interpolate_pos_encoding` does (after DINO, Caron et al. 2021), so their outputs agree."""

    def __init__(self, grid: int, d_model: int, n_prefix: int, std: float = 0.02) -> None:
        super().__init__()
        self.grid, self.n_prefix = grid, n_prefix
        self.table = nn.Parameter(torch.randn(1, n_prefix + grid * grid, d_model) * std)

    def forward(self, h: int, w: int) -> torch.Tensor:
        """Positions for an h x w grid of patches: (1, prefix + h*w, D)."""
        if (h, w) == (self.grid, self.grid):
            return self.table
        prefix, patches = self.table[:, : self.n_prefix], self.table[:, self.n_prefix :]
        d = patches.shape[-1]
        square = patches.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
        resized = F.interpolate(square, size=(h, w), mode="bicubic", align_corners=False)  # (1, D, h, w)
        return torch.cat([prefix, resized.permute(0, 2, 3, 1).reshape(1, h * w, d)], dim=1)  # (1, prefix + h*w, D)


def sincos_2d(h: int, w: int, d_model: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed 2-D positions (h*w, D), row-major: half the channels are the 1-D sinusoid of the patch's
    row, half that of its column (MAE, He et al. 2022; Beyer et al. 2022, "Better plain ViT baselines")."""
    rows = torch.arange(h, device=device).repeat_interleave(w)  # (h*w,) 0,0,..,1,1,..
    cols = torch.arange(w, device=device).repeat(h)  # (h*w,) 0,1,..,0,1,..
    return torch.cat([sinusoid_table(rows, d_model // 2), sinusoid_table(cols, d_model // 2)], dim=-1)


class SinCos2dPositions(nn.Module):
    """sincos_2d for any grid, nothing to train; a [CLS] gets the zero vector (MAE)."""

    def __init__(self, d_model: int, n_prefix: int) -> None:
        super().__init__()
        self.d_model, self.n_prefix = d_model, n_prefix
        self.register_buffer("anchor", torch.zeros(0), persistent=False)  # follows the model's device

    def forward(self, h: int, w: int) -> torch.Tensor:
        table = sincos_2d(h, w, self.d_model, self.anchor.device)  # (h*w, D)
        prefix = table.new_zeros(self.n_prefix, self.d_model)
        return torch.cat([prefix, table])[None]  # (1, prefix + h*w, D)
