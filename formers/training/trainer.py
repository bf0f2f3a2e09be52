"""The one training loop. It knows a model, an objective and a batch source, nothing more.

    objective(model, batch) -> {"loss": tensor, **metrics}
    source.next_batch() -> batch;  source.state_dict() / load_state_dict(d)  (for exact resume)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from formers.config import Config, check
from formers.errors import CheckpointError, NonFiniteLossError
from formers.io import WEIGHTS_FILE, load_weights, read_weights, save_model
from formers.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler, param_groups
from formers.training import checkpoint as ckpt
from formers.training.logging import RunLogger

Objective = Callable[[nn.Module, dict], dict[str, torch.Tensor]]


class BatchSource(Protocol):
    def next_batch(self) -> dict: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclasses.dataclass(kw_only=True)
class TrainerConfig(Config):
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 16  # sequences per micro-batch (read by the data builder)
    grad_accum: int = 1  # micro-batches per optimizer step
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16 = autocast (AMX on this CPU, tensor cores on GPU)
    device: str = "auto"  # "auto" = cuda if available, else cpu
    seed: int = 0
    eval_every: int = 200  # steps between evaluations; 0 = only at start and end
    eval_batches: int = 20
    save_every: int = 0  # steps between checkpoints; 0 = only at the end
    keep_last: int = 3  # checkpoints kept on disk
    log_every: int = 10
    progress: bool = True  # tqdm bar with loss, LR and tokens/s
    tensorboard: bool = True
    compile: bool = False  # torch.compile the model's forward

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("max_steps", "batch_size", "grad_accum", "eval_batches", "log_every", "keep_last"):
            check(getattr(self, name) > 0, f"TrainerConfig.{name}", getattr(self, name), "a positive int")
        for name in ("eval_every", "save_every"):
            check(getattr(self, name) >= 0, f"TrainerConfig.{name}", getattr(self, name), "an int >= 0")
        check(self.grad_clip is None or self.grad_clip > 0, "TrainerConfig.grad_clip", self.grad_clip, "> 0 or null")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def batch_tokens(batch: dict) -> int:
    ids = batch.get("input_ids")
    return ids.numel() if isinstance(ids, torch.Tensor) else 0


def move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        objective: Objective,
        train_source: BatchSource,
        *,
        config: TrainerConfig,
        out_dir: str | Path,
        val_batches: Sequence[dict] = (),
        tokenizer=None,
        extra_state: dict | None = None,
        param_groups_fn: Callable[[nn.Module], list[dict]] | None = None,
        callbacks: Sequence[Callable[[Trainer], None]] = (),
    ) -> None:
        """`extra_state` (e.g. the recipe) is saved as extra.json in every checkpoint;
        `param_groups_fn` overrides the default weight-decay split (layer-wise LR, frozen parts);
        each callback runs before every optimizer step with the trainer (gradual unfreezing)."""
        self.config, self.objective, self.source = config, objective, train_source
        self.val_batches, self.tokenizer, self.extra_state = list(val_batches), tokenizer, extra_state
        self.callbacks = list(callbacks)
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.forward_model = torch.compile(model) if config.compile else model
        groups = (param_groups_fn or (lambda m: param_groups(m, config.optimizer.weight_decay)))(model)
        self.optimizer = build_optimizer(groups, config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, config.max_steps)
        self.step = 0
        self.is_main = True  # rank 0 under torchrun; only it writes
        self.logger = RunLogger(self.out_dir, enabled=False)

    # ---- one step -------------------------------------------------------------------
    def autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self) -> dict[str, float]:
        """Accumulate gradients over micro-batches, check the loss, clip, update."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        tokens = 0
        for _ in range(self.config.grad_accum):
            batch = move(self.source.next_batch(), self.device)
            tokens += batch_tokens(batch)
            with self.autocast():
                metrics = self.objective(self.forward_model, batch)
            loss = metrics["loss"]
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at step {self.step}; no update was applied and the last checkpoint "
                    f"in {self.out_dir} is intact. Lower trainer.optimizer.lr, add warmup or set grad_clip"
                )
            (loss / self.config.grad_accum).backward()
            for key, value in metrics.items():
                value = value.detach() if isinstance(value, torch.Tensor) else value
                totals[key] = totals.get(key, 0.0) + float(value) / self.config.grad_accum
        for callback in self.callbacks:
            callback(self)
        if self.config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            if not torch.isfinite(norm):
                raise NonFiniteLossError(
                    f"gradient norm is {norm.item()} at step {self.step}; no update was applied. "
                    "Lower trainer.optimizer.lr or use fp32"
                )
            totals["grad_norm"] = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        totals["tokens"] = tokens
        return totals

    @torch.no_grad()
    def evaluate(self, batches: Sequence[dict] | None = None) -> dict[str, float]:
        """Mean of each metric over the validation batches, in eval mode."""
        batches = self.val_batches if batches is None else batches
        if not batches:
            return {}
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        for batch in batches[: self.config.eval_batches]:
            with self.autocast():
                metrics = self.objective(self.forward_model, move(batch, self.device))
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        self.model.train(was_training)
        n = min(len(batches), self.config.eval_batches)
        return {f"val/{k}": v / n for k, v in sums.items()}

    # ---- the loop -------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train to max_steps; returns the first and last validation metrics and the history."""
        cfg = self.config
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.out_dir, enabled=self.is_main, tensorboard=cfg.tensorboard)
        if resume and ckpt.latest_checkpoint(self.out_dir) is not None:
            self.load_checkpoint(ckpt.latest_checkpoint(self.out_dir))
        else:
            torch.manual_seed(cfg.seed)
        first_eval = self._eval_and_log() if self.step == 0 else {}
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.is_main), unit="step")
        window_tokens, window_start = 0, time.perf_counter()
        while self.step < cfg.max_steps:
            metrics = self.train_step()
            window_tokens += metrics.pop("tokens")
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                elapsed = time.perf_counter() - window_start
                record = {f"train/{k}": v for k, v in metrics.items()}
                record["train/lr"] = self.scheduler.get_last_lr()[0]
                record["train/tokens_per_s"] = window_tokens / max(elapsed, 1e-9)
                self.logger.log(self.step, record)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{record['train/lr']:.2e}",
                                tok_s=f"{record['train/tokens_per_s']:.0f}")
                window_tokens, window_start = 0, time.perf_counter()
            bar.update(1)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                self._eval_and_log()
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                self.save_checkpoint()
        bar.close()
        last_eval = self._eval_and_log()
        self.save_checkpoint()
        self.logger.plot()
        self.logger.close()
        return {"first_eval": first_eval, "last_eval": last_eval, "history": self.logger.history, "step": self.step}

    def _eval_and_log(self) -> dict[str, float]:
        metrics = self.evaluate()
        if metrics:
            self.logger.log(self.step, metrics)
            if self.is_main and self.config.progress:
                tqdm.write(f"step {self.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    # ---- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write step-XXXXXXXX atomically (weights, optimizer, scheduler, RNG, data position)."""
        if not self.is_main:
            return None
        final = self.out_dir / ckpt.checkpoint_name(self.step)
        with ckpt.atomic_write_dir(final) as tmp:
            save_model(self.model, tmp, self.tokenizer)
            tensors, meta = ckpt.optimizer_state_to_tensors(self.optimizer)
            ckpt.save_tensors(tmp / "optimizer.safetensors", tensors)
            ckpt.write_json(tmp / "optimizer.json", meta)
            ckpt.write_json(tmp / "scheduler.json", self.scheduler.state_dict())
            tensors, meta = ckpt.rng_state()
            ckpt.save_tensors(tmp / "rng.safetensors", tensors)
            ckpt.write_json(tmp / "rng.json", meta)
            state = {"step": self.step, "data": self.source.state_dict(), "history": self.logger.history}
            ckpt.write_json(tmp / "trainer_state.json", state)
            if self.extra_state is not None:
                ckpt.write_json(tmp / "extra.json", self.extra_state)
        for old in ckpt.list_checkpoints(self.out_dir)[: -self.config.keep_last]:
            _remove_tree(old)
        return final

    def load_checkpoint(self, folder: Path) -> None:
        """Restore everything `save_checkpoint` wrote, so the next step is the one that would have run."""
        load_weights(self.model, read_weights(folder / WEIGHTS_FILE), source=str(folder / WEIGHTS_FILE))
        self.model.to(self.device)
        optimizer_tensors = ckpt.load_tensors(folder / "optimizer.safetensors")
        ckpt.load_optimizer_state(self.optimizer, optimizer_tensors, ckpt.read_json(folder / "optimizer.json"))
        self.scheduler.load_state_dict(ckpt.read_json(folder / "scheduler.json"))
        state = ckpt.read_json(folder / "trainer_state.json")
        if state["step"] > self.config.max_steps:
            raise CheckpointError(
                f"{folder} is at step {state['step']}, past trainer.max_steps={self.config.max_steps}; raise max_steps"
            )
        self.step = state["step"]
        self.source.load_state_dict(state["data"])
        self.logger.history = list(state.get("history", []))
        ckpt.set_rng_state(ckpt.load_tensors(folder / "rng.safetensors"), ckpt.read_json(folder / "rng.json"))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
