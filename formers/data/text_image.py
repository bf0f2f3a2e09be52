"""Batches of [caption; image] token sequences for a DALL-E-style model, resumable by a step counter.

The images are tokenized once, before training (a frozen VQ-VAE gives the same codes every epoch), and
each image keeps several encoded captions; the batch at step n takes a shuffled epoch's images and one
caption of each, drawn from (seed, n), so the whole resume state is the step counter (StepCounted).
"""

from __future__ import annotations

import torch
from torch import Tensor

from formers.data.batches import StepCounted
from formers.data.images import epoch_indices
from formers.errors import DataError


class TextImageBatches(StepCounted):
    """{"input_ids": (B, T + M)}: caption ids (T, padded) followed by image ids (M) of one image.

    text_ids (N, K, T): K encoded captions per image; image_ids (N, M). Under torchrun every rank draws
    the same global batch and keeps its slice, as ImageBatches does."""

    def __init__(self, text_ids: Tensor, image_ids: Tensor, *, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if text_ids.dim() != 3 or image_ids.dim() != 2 or len(text_ids) != len(image_ids) or len(image_ids) == 0:
            raise DataError(f"text_ids must be (N, K, T) and image_ids (N, M) for the same N > 0 images; got "
                            f"{tuple(text_ids.shape)} and {tuple(image_ids.shape)}")
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size} must be at least 1")
        if not 0 <= rank < world_size:
            raise DataError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.text_ids, self.image_ids, self.batch_size, self.seed = text_ids, image_ids, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.step = 0

    def next_batch(self) -> dict[str, Tensor]:
        n, k = self.text_ids.shape[:2]
        global_batch = self.world_size * self.batch_size
        index = epoch_indices(n, global_batch, self.seed, self.step)  # (G,)
        choice = torch.randint(k, (global_batch,), generator=self.step_generator())  # (G,) which caption
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        index, choice = index[mine], choice[mine]
        self.step += 1
        return {"input_ids": torch.cat((self.text_ids[index, choice], self.image_ids[index]), dim=1)}  # (B, T + M)


def fixed_text_image_batches(text_ids: Tensor, image_ids: Tensor, *, batch_size: int,
                             max_batches: int | None = None) -> list[dict[str, Tensor]]:
    """The images in order with their first caption, for evaluation: [{"input_ids": (B, T + M)}, ...]."""
    n = len(image_ids) if max_batches is None else min(len(image_ids), max_batches * batch_size)
    return [{"input_ids": torch.cat((text_ids[s : s + batch_size, 0], image_ids[s : s + batch_size]), dim=1)}
            for s in range(0, n, batch_size)]
