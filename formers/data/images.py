"""Embedded image data (no download) and resumable image batches.

  Fashion-MNIST  real photographs of clothing, 60k train / 10k test, 28x28 grey, 10 classes
                 (Xiao et al. 2017), from Debian's `dataset-fashion-mnist` package.
  Digits         1,797 real 8x8 handwritten digits bundled with scikit-learn, for the smallest tests.

Images are kept as uint8 (N, C, H, W), channels first; a model sees float pixels normalised by the
training split's per-channel mean and std (`ImageSet.normalize`). Batches follow the text batch
sources' contract: the batch at step n is a pure function of (seed, n), so the whole resume state
is the step counter.
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from formers.data.batches import StepCounted, step_seed
from formers.errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclasses.dataclass
class ImageSet:
    """Labelled images: uint8 pixels (N, C, H, W), long labels (N,), class names, normalisation stats."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] units, from the training split
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (len(self.images),):
            raise DataError(f"labels {tuple(self.labels.shape)} do not match {len(self.images)} images")
        if len(self.images) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise DataError(f"labels must lie in [0, {len(self.classes)}) for classes {self.classes}")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise DataError(f"mean/std need one value per channel ({self.images.shape[1]})")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def n_channels(self) -> int:
        return self.images.shape[1]

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 (B, C, H, W) -> float32 (B, C, H, W) with the training split's mean 0 and std 1."""
        return normalize_pixels(images, self.mean, self.std)

    def subset(self, index: Tensor | slice) -> ImageSet:
        return dataclasses.replace(self, images=self.images[index], labels=self.labels[index])


def normalize_pixels(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """uint8 (B, C, H, W) -> float32 (B, C, H, W): pixels in [0, 1] units, less `mean`, over `std` (per channel)."""
    return (images.float() / 255.0 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def denormalize_pixels(pixel_values: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """The inverse of normalize_pixels, without rounding: float (B, C, H, W) -> pixels in [0, 1] units (clamped)."""
    mean_t = torch.tensor(list(mean), dtype=pixel_values.dtype, device=pixel_values.device).view(1, -1, 1, 1)
    std_t = torch.tensor(list(std), dtype=pixel_values.dtype, device=pixel_values.device).view(1, -1, 1, 1)
    return (pixel_values * std_t + mean_t).clamp(0, 1)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) std of uint8 (N, C, H, W) in [0, 1] units.

    From a histogram of the 256 byte values: exact, and ~20x faster than widening 47M pixels to float64."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1).long(), minlength=256).double()  # (256,)
        n = counts.sum()
        mean = (counts * levels).sum() / n
        var = (counts * (levels - mean) ** 2).sum() / (n - 1).clamp(min=1)
        means.append(mean.item())
        stds.append(var.sqrt().item())
    return tuple(means), tuple(stds)


def _read_idx(path: Path) -> Tensor:
    """An IDX file (LeCun's MNIST format: magic, dims, big-endian uint8 data), gzip or plain."""
    if not path.is_file() and path.with_suffix("").is_file():
        path = path.with_suffix("")  # some installs unpack the .gz
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        fix = "apt-get install --reinstall dataset-fashion-mnist"
        raise DataError(f"{path} cannot be read ({e}); reinstall it: {fix}") from None
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if len(body) != int(torch.tensor(shape).prod()):
        raise DataError(f"{path} holds {len(body)} bytes but its header promises shape {shape}; the file is truncated")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


def load_fashion_mnist(split: str = "train", root: str | Path = FASHION_MNIST_DIR) -> ImageSet:
    """Fashion-MNIST's "train" (60,000) or "test" (10,000) split, normalised by the training split's stats."""
    if split not in ("train", "test"):
        raise DataError(f"Fashion-MNIST split={split!r} is not allowed; expected 'train' or 'test'")
    root = Path(root)
    prefix = "train" if split == "train" else "t10k"
    images_path, labels_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
    for path in (images_path, labels_path):
        if not path.is_file() and not path.with_suffix("").is_file():
            raise DataError(f"Fashion-MNIST file {path} is missing; install Debian's package: "
                            "apt-get install -y dataset-fashion-mnist (scripts/setup.sh does this when run as root)")
    images = _read_idx(images_path)[:, None]  # (N, 1, 28, 28)
    labels = _read_idx(labels_path).long()
    return ImageSet(images, labels, FASHION_MNIST_CLASSES, *FASHION_MNIST_STATS)


# The training split's pixel mean/std (channel_stats of the 60,000 training images; a test checks these
# figures): both splits are normalised by training statistics, without recounting 47M pixels per load.
FASHION_MNIST_STATS = ((0.2860405969887955,), (0.35302424826730616,))


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0) -> ImageSet:
    """scikit-learn's 8x8 digits (values 0-16, scaled to 0-255), split by a seeded permutation."""
    if split not in ("train", "test"):
        raise DataError(f"digits split={split!r} is not allowed; expected 'train' or 'test'")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction={test_fraction} must lie in (0, 1)")
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError("the digits data comes with scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_digits()
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round()).to(torch.uint8)[:, None]  # (N, 1, 8, 8)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(images) * test_fraction))
    train_idx, test_idx = order[n_test:], order[:n_test]
    mean, std = channel_stats(images[train_idx])
    index = train_idx if split == "train" else test_idx
    return ImageSet(images[index], labels[index], DIGIT_CLASSES, mean, std)


IMAGE_DATASETS = {"fashion_mnist": load_fashion_mnist, "digits": load_digits}


def load_image_dataset(name: str, split: str) -> ImageSet:
    """An embedded labelled image set by name (see IMAGE_DATASETS)."""
    if name not in IMAGE_DATASETS:
        raise DataError(f"image dataset {name!r} is not known; expected one of {sorted(IMAGE_DATASETS)}")
    return IMAGE_DATASETS[name](split)


def epoch_indices(n: int, batch_size: int, seed: int, step: int) -> Tensor:
    """Indices of the global batch at `step` when every epoch visits all n items once in a seeded order.

    A pure function of (seed, step): each epoch's permutation is drawn from (seed, epoch), and a batch
    that straddles two epochs takes the end of one and the start of the next."""
    start = step * batch_size
    parts, taken = [], 0
    while taken < batch_size:
        epoch, offset = divmod(start + taken, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(step_seed(seed, epoch)))
        chunk = order[offset : offset + batch_size - taken]
        parts.append(chunk)
        taken += len(chunk)
    return torch.cat(parts)  # (batch_size,)


@dataclasses.dataclass(kw_only=True)
class Augment:
    """Random translation by zero-padding and cropping back (pixels), and horizontal flips."""

    pad: int = 0  # pad each side by this many pixels, then crop the original size at a random offset
    flip: bool = False  # mirror left-right with probability 1/2 (fine for clothing; wrong for digits)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        b, _, h, w = images.shape
        if self.pad:
            padded = torch.nn.functional.pad(images, (self.pad,) * 4)  # (B, C, H+2p, W+2p)
            dy = torch.randint(0, 2 * self.pad + 1, (b,), generator=generator)
            dx = torch.randint(0, 2 * self.pad + 1, (b,), generator=generator)
            rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
            images = padded[torch.arange(b)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None],
                            rows, cols]  # (B, C, H, W)
        if self.flip:
            mirror = torch.rand(b, generator=generator) < 0.5
            images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
        return images


class ImageBatches(StepCounted):
    """Shuffled epochs of labelled images as {"pixel_values": (B, C, H, W) float, "labels": (B,)}.

    Under torchrun every rank draws the same global batch of world_size * batch_size images and
    keeps its slice, as TokenWindows does."""

    def __init__(self, data: ImageSet, *, batch_size: int, seed: int, augment: Augment | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size} must be at least 1")
        if len(data) == 0:
            raise DataError("the image set is empty")
        if not 0 <= rank < world_size:
            raise DataError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.augment, self.rank, self.world_size = augment, rank, world_size
        self.step = 0

    def next_batch(self) -> dict[str, Tensor]:
        index = epoch_indices(len(self.data), self.world_size * self.batch_size, self.seed, self.step)
        index = index[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # (B,) this rank's slice
        images = self.data.images[index]
        if self.augment is not None:
            images = self.augment(images, self.step_generator())
        self.step += 1
        return {"pixel_values": self.data.normalize(images), "labels": self.data.labels[index]}


def eval_image_batches(data: ImageSet, *, batch_size: int, max_batches: int | None = None) -> list[dict[str, Tensor]]:
    """The set in order, in batches (the last may be smaller); `max_batches` keeps the first few."""
    if batch_size < 1:
        raise DataError(f"batch_size={batch_size} must be at least 1")
    n = len(data) if max_batches is None else min(len(data), max_batches * batch_size)
    return [
        {"pixel_values": data.normalize(data.images[s : s + batch_size]), "labels": data.labels[s : s + batch_size]}
        for s in range(0, n, batch_size)
    ]
