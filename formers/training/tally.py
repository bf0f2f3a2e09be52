"""A step's (or an evaluation's) metrics, weighed by targets and reduced over ranks in one collective.

See training/trainer.py for why: an objective's "n_targets" weighs its loss and metrics, a
`Weighted(mean, count)` metric weighs its own count, a result without n_targets weighs 1.
"""

from __future__ import annotations

import torch

from formers.errors import DataError
from formers.training import distributed


def _vector(values: list, device: torch.device) -> torch.Tensor:
    """Metrics (tensors or numbers) as one float64 vector, so ranks reduce them in one collective."""
    return torch.stack([torch.as_tensor(v).detach().to(device, torch.float64).reshape(()) for v in values])


class Tally:
    """Weighted sums of a step's (or an evaluation's) metrics, reduced over ranks in one collective.

    Each result weighs its n_targets (1 without); a (mean, count) metric weighs its own count.
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.keys, self.sums = device, [], None

    def add(self, metrics: dict, tokens: int, *, present: bool = True) -> torch.Tensor:
        """Add one result (popping its n_targets); returns its weight, a detached tensor, for the loss."""
        n = metrics.pop("n_targets", None)
        weight = torch.as_tensor(1.0 if n is None else n, device=self.device).detach().to(torch.float32)
        values, counts = [], []
        for value in metrics.values():
            value, count = value if isinstance(value, tuple) else (value, weight)
            values.append(torch.as_tensor(value).detach() * count)
            counts.append(count)
        scale = 1.0 if present else 0.0  # a spare evaluation forward counts nothing
        vector = _vector([*values, *counts, tokens], self.device) * scale
        self.keys = list(metrics)
        self.sums = vector if self.sums is None else self.sums + vector
        return weight

    def means(self, *, train: bool) -> tuple[dict[str, float], float]:
        """(metric -> weighted mean over every result of every rank, the loss's total weight)."""
        *sums, tokens = distributed.all_sum(self.sums).tolist()
        k = len(self.keys)
        values, counts = sums[:k], sums[k:]
        n_targets = counts[self.keys.index("loss")] if "loss" in self.keys else 1.0
        if n_targets <= 0:
            raise DataError("this step's batches hold no targets (n_targets = 0 on every micro-batch and rank); "
                            "check the data: every batch needs at least one label that is not ignored")
        out = {key: v / c if c else float("nan") for key, v, c in zip(self.keys, values, counts, strict=True)}
        if train:
            out["tokens"] = tokens
        return out, n_targets
