"""Run logs: metrics.jsonl, TensorBoard scalars and a loss-curve PNG, written by rank 0 only."""

from __future__ import annotations

import json
from pathlib import Path


class RunLogger:
    def __init__(self, out_dir: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.out_dir, self.enabled = Path(out_dir), enabled
        self.history: list[dict] = []
        self._writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **metrics}
        self.history.append(record)
        if not self.enabled:
            return
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def plot(self, path: Path | None = None) -> Path | None:
        """Train and validation loss against step, as a PNG beside the logs."""
        if not self.enabled:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = path or self.out_dir / "loss.png"
        fig, ax = plt.subplots(figsize=(6, 4))
        for key, style in (("train/loss", "-"), ("val/loss", "o-")):
            points = [(r["step"], r[key]) for r in self.history if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
