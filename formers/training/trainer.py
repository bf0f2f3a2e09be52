"""The one training loop. It knows a model, an objective and a batch source, nothing more.

    objective(model, batch) -> {"loss": tensor, **metrics, optional "n_targets": count}
    source.next_batch() -> batch;  source.state_dict() / load_state_dict(d)  (for exact resume)

Weighing by targets. When an objective's "loss" is a mean over targets (tokens of a causal
LM, masked positions of an MLM, response tokens of SFT), it says over how many in
"n_targets". A step's gradient is then that of the mean over every target of the step: each
micro-batch's loss weighs n_targets / N, N the targets of all micro-batches and all ranks, so
k accumulated micro-batches (or N ranks) equal one large batch, however unevenly the targets
fall. Without n_targets a micro-batch weighs 1 (a contrastive loss is a per-batch quantity).
Metrics are averaged with the same weights; a metric over another unit is returned as a
(mean, count) pair and weighed by its own count (Seq2SeqLM's per-sequence accuracy).

The same loop runs one process or many under torchrun (`distributed: ddp | fsdp`, see
distributed.py): each rank's source yields its own part of the global batch, metrics are
averaged over ranks, and only rank 0 (`is_main`) logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from formers import storage
from formers.config import Config, check
from formers.errors import CheckpointError, NonFiniteLossError
from formers.optim import OptimizerConfig, ScheduleConfig, build_optimizer, build_scheduler, param_groups
from formers.registry import build_model
from formers.training import checkpoint as ckpt
from formers.training import distributed
from formers.training.distributed import Mode
from formers.training.logging import RunLogger
from formers.training.pace import Pace
from formers.training.precision import MasterWeights, Precision, autocast, choose_precision, probe, warn_once
from formers.training.tally import Tally

Objective = Callable[[nn.Module, dict], dict[str, torch.Tensor]]


class BatchSource(Protocol):
    def next_batch(self) -> dict: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


@dataclasses.dataclass(kw_only=True)
class TrainerConfig(Config):
    max_steps: int = 1000  # optimizer steps; the LR schedule runs over them
    # Wall-clock budget of one fit (None = none): past it the run stops with an eval and a checkpoint, and
    # --resume continues the same schedule toward max_steps (see pace.py)
    max_minutes: float | None = None
    batch_size: int = 16  # sequences per micro-batch (read by the data builder)
    grad_accum: int = 1  # micro-batches per optimizer step
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    grad_clip: float | None = 1.0  # max global grad norm; None = no clipping
    # auto (bf16 where the device computes it natively, else fp32) | fp32 | bf16 (autocast)
    # | bf16-pure (bf16 model, fp32 master weights in the optimizer); see precision.py
    precision: Precision = "auto"
    device: str = "auto"  # "auto" = cuda if available, else cpu
    distributed: Mode = "none"  # under torchrun: ddp (replicas) or fsdp (sharded); see distributed.py
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
        check(self.max_minutes is None or self.max_minutes > 0, "TrainerConfig.max_minutes", self.max_minutes,
              "> 0 or null")


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
        each callback runs before every optimizer step with the trainer (gradual unfreezing).
        Under torchrun, `train_source` must yield this rank's part of the global batch."""
        self.config, self.objective, self.source = config, objective, train_source
        self.val_batches, self.tokenizer, self.extra_state = list(val_batches), tokenizer, extra_state
        self.callbacks = list(callbacks)
        self.out_dir = Path(out_dir)
        self.device, self._owns_group = distributed.setup(config.distributed, resolve_device(config.device))
        self.is_main = distributed.is_main()  # rank 0 under torchrun; only it writes
        self.precision_choice = choose_precision(config.precision, probe(self.device))
        self.precision = self.precision_choice.precision  # `auto` resolved: fp32 | bf16 | bf16-pure
        if self.precision_choice.warning and self.is_main:
            warn_once(self.precision_choice.warning)
        self.strategy = distributed.make_strategy(
            config.distributed, self.device, bf16_params=self.precision == "bf16-pure"
        )
        self.model = model.to(self.device)
        groups_fn = param_groups_fn or (lambda m: param_groups(m, config.optimizer.weight_decay))
        # bf16-pure: the model becomes bf16 before wrapping (DDP buckets by dtype); FSDP has its own policy.
        self.master = (
            MasterWeights(model, groups_fn(model))
            if self.precision == "bf16-pure" and self.strategy.name != "fsdp" else None
        )
        self.wrapped = self.strategy.wrap(model)  # FSDP swaps the parameters for shards: groups come after
        self.optimizer = build_optimizer(self.master.groups if self.master else groups_fn(model), config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, config.max_steps)
        self.forward_model = torch.compile(self.wrapped) if config.compile else self.wrapped
        self.step = 0
        self.logger = RunLogger(self.out_dir, enabled=False)

    # ---- one step -------------------------------------------------------------------
    def autocast(self):
        return autocast(self.precision, self.device)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def train_step(self) -> dict[str, float]:
        """Accumulate gradients over micro-batches, weigh them by targets, check, clip, update."""
        self.wrapped.train()
        self.optimizer.zero_grad(set_to_none=True)
        accum = self.config.grad_accum
        tally = Tally(self.device)
        for i in range(accum):
            batch = move(self.source.next_batch(), self.device)
            # DDP/FSDP all-reduce gradients only after the last micro-batch
            with self.strategy.gradient_sync(self.wrapped, enabled=i == accum - 1):
                with self.autocast():
                    metrics = self.objective(self.forward_model, batch)
                weight = tally.add(metrics, batch_tokens(batch))
                # n_targets x the mean = the loss summed over targets; divided by all targets below
                (metrics["loss"] * weight).backward()
        totals, n_targets = tally.means(train=True)  # one all-reduce per step, not one per metric
        if not math.isfinite(totals["loss"]):  # the same on every rank: all stop together
            raise NonFiniteLossError(
                f"loss is {totals['loss']} at step {self.step}; no update was applied and the last checkpoint "
                f"in {self.out_dir} is intact. Lower trainer.optimizer.lr, add warmup or set grad_clip"
            )
        if self.master is not None:
            self.master.grads_to_master()
        # DDP and FSDP average gradients over ranks; the sum over every target of the step is wanted.
        self._scale_grads(distributed.group_size() / n_targets)
        for callback in self.callbacks:  # they see the step's final gradients, before clipping
            callback(self)
        if self.config.grad_clip is not None:
            norm = float(distributed.scalar(torch.nn.utils.clip_grad_norm_(self._params(), self.config.grad_clip)))
            if not math.isfinite(norm):
                raise NonFiniteLossError(
                    f"gradient norm is {norm} at step {self.step}; no update was applied. "
                    "Lower trainer.optimizer.lr or use fp32"
                )
            totals["grad_norm"] = norm
        self.optimizer.step()
        if self.master is not None:
            self.master.master_to_model()
        self.scheduler.step()
        self.step += 1
        return totals

    @torch.no_grad()
    def _scale_grads(self, factor: float) -> None:
        if factor != 1.0:
            grads = [p.grad for p in self._params() if p.grad is not None]
            for grad in grads:  # (DTensors under FSDP: one op each, not a foreach over mixed layouts)
                grad.mul_(factor)

    @torch.no_grad()
    def evaluate(self, batches: Sequence[dict] | None = None) -> dict[str, float]:
        """Each metric over the validation batches (weighed by targets, as in training), in eval mode;
        ranks share the batches out."""
        batches = list(self.val_batches if batches is None else batches)[: self.config.eval_batches]
        if not batches:
            return {}
        was_training = self.wrapped.training
        self.wrapped.eval()
        mine = batches[distributed.group_rank() :: distributed.group_size()]
        rounds = math.ceil(len(batches) / distributed.group_size())
        tally = Tally(self.device)
        for i in range(rounds):
            # Every rank runs the same number of forwards (FSDP all-gathers in each); spares count zero.
            batch, present = (mine[i], True) if i < len(mine) else (batches[0], False)
            with self.autocast():
                metrics = self.objective(self.forward_model, move(batch, self.device))
            tally.add(metrics, 0, present=present)
        self.wrapped.train(was_training)
        return {f"val/{k}": v for k, v in tally.means(train=False)[0].items()}

    # ---- the loop -------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Train to max_steps (or until max_minutes); returns the first and last validation metrics, the
        history, the step reached and whether the time budget stopped it (`out_of_time`).

        Under torchrun the process group the Trainer joined is left at the end; after FSDP,
        rank 0's `self.model` is the trained model, gathered whole from the final checkpoint.
        """
        try:
            return self._fit(resume)
        finally:
            if self._owns_group:
                distributed.teardown()
                self._owns_group = False

    def _fit(self, resume: bool) -> dict[str, Any]:
        cfg = self.config
        pace = Pace(first_step=0, max_steps=cfg.max_steps, max_minutes=cfg.max_minutes, eval_every=cfg.eval_every)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.out_dir, enabled=self.is_main, tensorboard=cfg.tensorboard)
        self._say(self.precision_choice.line)
        latest = storage.latest_checkpoint(self.out_dir) if resume else None
        if latest is not None:
            self.load_checkpoint(latest)
        else:
            torch.manual_seed(cfg.seed + distributed.rank())  # each rank its own dropout masks
        pace.first_step = self.step
        first_eval = self._timed(pace, self._eval_and_log) if self.step == 0 else {}
        out_of_time = self._loop(pace)
        if out_of_time:
            self._say(f"time budget reached (trainer.max_minutes={cfg.max_minutes:g}) at step {self.step} of "
                      f"{cfg.max_steps}: final eval and checkpoint; --resume=true continues")
        last_eval = self._eval_and_log()
        final = self.save_checkpoint()
        if self.master is not None:
            self.master.restore()  # hand back an fp32 model holding the exact master weights
        if self.strategy.name == "fsdp" and self.is_main:
            self.model = self._whole_model(final)
        self.logger.plot()
        self.logger.close()
        return {"first_eval": first_eval, "last_eval": last_eval, "history": self.logger.history, "step": self.step,
                "precision": self.precision, "out_of_time": out_of_time}

    def _loop(self, pace: Pace) -> bool:
        """Steps to max_steps, logging, evaluating and saving on schedule; True if the time budget ended it."""
        cfg = self.config
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.is_main), unit="step")
        examples_per_step = cfg.batch_size * cfg.grad_accum * distributed.group_size()
        window_tokens, window_steps, window_start = 0, 0, time.perf_counter()
        while self.step < cfg.max_steps:
            metrics = self.train_step()
            window_tokens += metrics.pop("tokens")
            window_steps += 1
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                record = {f"train/{k}": v for k, v in metrics.items()}
                record["train/lr"] = self.scheduler.get_last_lr()[0]
                record["train/examples_per_s"] = window_steps * examples_per_step / elapsed  # all ranks together
                rate = {"ex_s": record["train/examples_per_s"]}
                if window_tokens:  # batches without input_ids (images) have no tokens: their rate is in examples
                    record["train/tokens_per_s"] = window_tokens / elapsed
                    rate = {"tok_s": record["train/tokens_per_s"]}
                self.logger.log(self.step, record)
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{record['train/lr']:.2e}",
                                **{k: f"{v:.0f}" for k, v in rate.items()})
                window_tokens, window_steps, window_start = 0, 0, time.perf_counter()
            bar.update(1)
            eta = pace.step_done(self.step)
            if eta:
                self._say(eta)
            if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.max_steps:
                self._timed(pace, self._eval_and_log)
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                self._timed(pace, self.save_checkpoint, is_eval=False)
            if self.step < cfg.max_steps and self._out_of_time(pace):
                bar.close()
                return True
        bar.close()
        return False

    def _timed(self, pace: Pace, fn: Callable[[], Any], *, is_eval: bool = True) -> Any:
        """Run an eval or a save between steps, telling the pace it was not step time."""
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        pace.mark_pause(seconds)
        if is_eval:
            pace.timed_eval(seconds)
        return result

    def _out_of_time(self, pace: Pace) -> bool:
        """Rank 0's clock decides for every rank: ranks that stopped apart would wait on each other forever."""
        if self.config.max_minutes is None:
            return False
        flag = torch.tensor([float(pace.out_of_time() and self.is_main)], device=self.device)
        return bool(distributed.all_sum(flag).item() > 0)

    def _say(self, line: str) -> None:
        """A line for the person watching (rank 0, when progress is on), printed above the progress bar."""
        if self.is_main and self.config.progress:
            tqdm.write(line)

    def _whole_model(self, folder: Path) -> nn.Module:
        """After FSDP, rank 0's model whole again: a fresh copy loaded from the final checkpoint
        (shards need every rank to gather; the file does not)."""
        return storage.load_model_weights(build_model(self.model.config), folder).to(self.device).eval()

    def _eval_and_log(self) -> dict[str, float]:
        metrics = self.evaluate()
        if metrics:
            self.logger.log(self.step, metrics)
            self._say(f"step {self.step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    # ---- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write step-XXXXXXXX atomically (weights, optimizer, scheduler, RNG, data position).

        Every rank must call it (FSDP gathers shards, every rank's RNG state is kept); rank 0 writes.
        """
        weights = self.strategy.model_state(self.model)
        if self.master is not None:
            weights.update(self.master.state())  # the fp32 masters, not their bf16 rounding
        optimizer = self.strategy.optimizer_state(self.model, self.optimizer)
        rngs = distributed.gather(ckpt.rng_state())
        final = self.out_dir / storage.checkpoint_name(self.step)
        if self.is_main:
            self._write_checkpoint(final, weights, optimizer, rngs)
        distributed.barrier()  # nobody reads (resumes) before the folder exists
        return final if self.is_main else None

    def _write_checkpoint(self, final: Path, weights: dict, optimizer: dict, rngs: list) -> None:
        with storage.atomic_write_dir(final) as tmp:
            storage.save_model(self.model, tmp, self.tokenizer, state=weights)
            tensors, meta = ckpt.split_optimizer_state(optimizer)
            storage.save_tensors(tmp / "optimizer.safetensors", tensors)
            storage.write_json(tmp / "optimizer.json", meta)
            storage.write_json(tmp / "scheduler.json", self.scheduler.state_dict())
            for r, (tensors, meta) in enumerate(rngs):
                storage.save_tensors(tmp / _rng_file(r, "safetensors"), tensors)
                storage.write_json(tmp / _rng_file(r, "json"), meta)
            state = {"step": self.step, "data": self.source.state_dict(), "history": self.logger.history,
                     "world_size": len(rngs)}
            storage.write_json(tmp / "trainer_state.json", state)
            if self.extra_state is not None:
                storage.write_json(tmp / "extra.json", self.extra_state)
        for old in storage.list_checkpoints(self.out_dir)[: -self.config.keep_last]:
            storage.remove_checkpoint(old)

    def load_checkpoint(self, folder: Path) -> None:
        """Restore everything `save_checkpoint` wrote, so the next step is the one that would have run.

        Every rank reads the same folder (a shared filesystem across machines)."""
        weights = storage.read_tensors(folder / storage.WEIGHTS_FILE)
        self.strategy.load_model_state(self.model, weights, str(folder / storage.WEIGHTS_FILE))
        if self.master is not None:
            self.master.load(weights)
        optimizer = ckpt.join_optimizer_state(
            storage.read_tensors(folder / "optimizer.safetensors"), storage.read_json(folder / "optimizer.json")
        )
        self.strategy.load_optimizer_state(self.model, self.optimizer, optimizer)
        self.scheduler.load_state_dict(storage.read_json(folder / "scheduler.json"))
        state = storage.read_json(folder / "trainer_state.json")
        if state["step"] > self.config.max_steps:
            raise CheckpointError(
                f"{folder} is at step {state['step']}, past trainer.max_steps={self.config.max_steps}; raise max_steps"
            )
        self.step = state["step"]
        self.source.load_state_dict(state["data"])
        self.logger.history = list(state.get("history", []))
        r = distributed.rank()
        if (folder / _rng_file(r, "safetensors")).is_file():
            ckpt.set_rng_state(storage.read_tensors(folder / _rng_file(r, "safetensors")),
                               storage.read_json(folder / _rng_file(r, "json")))
        else:  # more ranks than the run that saved: a fresh stream per rank (exact only at the same world size)
            torch.manual_seed(self.config.seed + r + 1_000_003 * self.step)


def _rng_file(rank: int, suffix: str) -> str:
    """rng.* for rank 0 (and single-process runs), rng-rank<r>.* for the others."""
    return f"rng.{suffix}" if rank == 0 else f"rng-rank{rank}.{suffix}"


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
