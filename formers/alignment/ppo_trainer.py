"""The PPO loop for a causal LM: rollout with `generate`, then several epochs of minibatch updates.

Design choices, each one place in the code:
- Policy and value share the trunk: a linear value head reads the policy's last hidden
  states (as in Ziegler et al. 2019's released code and TRL's ValueHead models). One forward
  pass gives both; `value_coef` keeps the value gradient from swamping the policy's.
- The reference is a frozen copy of the policy as it was when the trainer was built.
- Dropout is off throughout (the policy stays in eval mode): the log-probs of a rollout and
  of the first update on it must agree for the ratio to start at 1.
- The optimizer and schedule come from formers.optim, checkpoints from formers.storage and
  formers.training.checkpoint (weights in safetensors, atomic folders), logs from RunLogger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from formers import storage
from formers.alignment.ppo import (
    KLController,
    PPOConfig,
    entropy,
    explained_variance,
    gae,
    kl_estimate,
    masked_mean,
    policy_loss,
    value_loss,
    whiten,
)
from formers.alignment.reward import ScoreFn
from formers.alignment.sequences import frozen_copy, response_logprobs, sample
from formers.errors import NonFiniteLossError
from formers.optim import build_optimizer, build_scheduler, param_groups
from formers.training import checkpoint as ckpt
from formers.training.logging import RunLogger
from formers.training.trainer import resolve_device

MetricsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


@dataclasses.dataclass
class Rollout:
    """One batch of sampled responses and everything the updates need; (B, ...) tensors."""

    sequences: torch.Tensor  # (B, Tq + R) left-padded query, then response
    attention_mask: torch.Tensor  # (B, Tq + R)
    query_len: int  # Tq: responses start at this column
    mask: torch.Tensor  # (B, R) float, 1 on response tokens up to and including <eos>
    logp: torch.Tensor  # (B, R) log-probs under the policy that sampled them
    values: torch.Tensor  # (B, R)
    advantages: torch.Tensor  # (B, R)
    returns: torch.Tensor  # (B, R)


class PPOTrainer:
    def __init__(
        self,
        policy: nn.Module,
        score_fn: ScoreFn,
        prompts: Sequence[Sequence[int]],
        *,
        config: PPOConfig,
        out_dir: str | Path,
        eos_id: int | None,
        pad_id: int,
        reference: nn.Module | None = None,
        tokenizer=None,
        metrics_fn: MetricsFn | None = None,
    ) -> None:
        """`score_fn(query, query_mask, response, response_mask) -> (B,)` scores whole responses (a reward
        model, or a rule); `prompts` are token lists sampled from for every rollout; `metrics_fn` takes the
        same arguments and returns extra numbers to log (e.g. the true rule-satisfaction rate)."""
        self.config, self.score_fn, self.metrics_fn = config, score_fn, metrics_fn
        self.prompts, self.eos_id, self.pad_id, self.tokenizer = [list(p) for p in prompts], eos_id, pad_id, tokenizer
        self.out_dir, self.device = Path(out_dir), resolve_device(config.device)
        self.policy = policy.to(self.device).eval()
        self.reference = (reference if reference is not None else frozen_copy(policy)).to(self.device).eval()
        self.value_head = nn.Linear(policy.config.d_model, 1).to(self.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        trainable = nn.ModuleDict({"policy": self.policy, "value_head": self.value_head})
        self.optimizer = build_optimizer(param_groups(trainable, config.optimizer.weight_decay), config.optimizer)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, config.updates())
        self.kl = KLController(config.kl)
        self.rng = torch.Generator().manual_seed(config.seed)  # prompt draws and minibatch order
        self.sampler = torch.Generator(self.device).manual_seed(config.seed + 1)  # token sampling
        self.reward_norm: tuple[float, float] | None = None
        self.iteration = 0
        self.logger = RunLogger(self.out_dir, enabled=False)

    # ---- rollout ------------------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, sequences: torch.Tensor, attention_mask: torch.Tensor, query_len: int,
                 with_value: bool = False) -> dict[str, torch.Tensor]:
        """Log-probs (B, R) of the response tokens under `model`, their entropy and (for the policy) values."""
        out = response_logprobs(model, sequences, attention_mask, query_len, self.config.temperature)
        result = {"logp": out["logp"], "entropy": entropy(out["logits"])}
        if with_value:
            result["values"] = self.value_head(out["hidden"]).squeeze(-1).float()
        return result

    def _normalized(self, scores: torch.Tensor) -> torch.Tensor:
        if not self.config.normalize_reward:
            return scores
        if self.reward_norm is None:  # fixed on the first rollout, i.e. on samples of the initial policy
            std = float(scores.std()) if len(scores) > 1 else 0.0
            self.reward_norm = (float(scores.mean()), std if std > 1e-6 else 1.0)  # constant scores: shift only
        mean, std = self.reward_norm
        return (scores - mean) / std

    @torch.no_grad()
    def rollout(self) -> tuple[Rollout, dict[str, float]]:
        """Sample responses, score them, and turn scores and KL into per-token rewards and advantages."""
        cfg = self.config
        picks = torch.randint(len(self.prompts), (cfg.rollout_batch,), generator=self.rng).tolist()
        query, query_mask, response, response_mask = sample(
            self.policy, [self.prompts[i] for i in picks], max_new_tokens=cfg.max_new_tokens, eos_id=self.eos_id,
            pad_id=self.pad_id, temperature=cfg.temperature, generator=self.sampler)
        sequences, attention_mask = torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1)
        tq, mask = query.shape[1], response_mask.float()
        current = self.evaluate(self.policy, sequences, attention_mask, tq, with_value=True)
        ref_logp = self.evaluate(self.reference, sequences, attention_mask, tq)["logp"]
        scores = self.score_fn(query, query_mask, response, response_mask).float()
        kl = kl_estimate(current["logp"], ref_logp, self.config.kl.estimator) * mask  # (B, R)
        rewards = -self.kl.coef * kl
        last = mask.sum(-1).long() - 1  # (B,) index of each response's last token
        rewards[torch.arange(len(last)), last] += self._normalized(scores)
        values = current["values"] * mask
        advantages, returns = gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
        if cfg.whiten_advantages:
            advantages = whiten(advantages, mask)
        stats = {
            "score": float(scores.mean()), "kl": float(((current["logp"] - ref_logp) * mask).sum(-1).mean()),
            "kl_penalty": float(kl.sum(-1).mean()), "kl_coef": self.kl.coef,
            "entropy": float(masked_mean(current["entropy"], mask)), "response_length": float(mask.sum(-1).mean()),
            "explained_variance": explained_variance(values, returns, mask),
        }
        if self.metrics_fn is not None:
            stats.update(self.metrics_fn(query, query_mask, response, response_mask))
        batch = Rollout(sequences, attention_mask, tq, mask, current["logp"], values, advantages, returns)
        return batch, stats

    # ---- update -------------------------------------------------------------------------------------------------
    def update(self, batch: Rollout) -> dict[str, float]:
        """`ppo_epochs` passes over the rollout in shuffled minibatches, one optimizer step each."""
        cfg = self.config
        sums: dict[str, float] = {}
        n = 0
        for _ in range(cfg.ppo_epochs):
            for idx in torch.randperm(len(batch.mask), generator=self.rng).split(cfg.minibatch_size):
                idx = idx.to(self.device)
                mask = batch.mask[idx]
                now = self.evaluate(self.policy, batch.sequences[idx], batch.attention_mask[idx], batch.query_len,
                                    with_value=True)
                pg = policy_loss(now["logp"], batch.logp[idx], batch.advantages[idx], mask, cfg.clip_range)
                vf = value_loss(now["values"], batch.values[idx], batch.returns[idx], mask, cfg.clip_range_value)
                ent = masked_mean(now["entropy"], mask)
                loss = pg["loss"] + cfg.value_coef * vf["loss"] - cfg.entropy_coef * ent
                self._step(loss)
                parts = {"policy_loss": pg["loss"], "value_loss": vf["loss"], "clipfrac": pg["clipfrac"],
                         "value_clipfrac": vf["clipfrac"], "approx_kl": pg["approx_kl"], "loss": loss}
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                n += 1
        return {k: v / n for k, v in sums.items()}

    def _step(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"PPO loss is {loss.item()} at iteration {self.iteration}; no update was "
                                     "applied. Lower ppo.optimizer.lr or the reward scale")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()

    # ---- the loop -----------------------------------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> dict[str, Any]:
        """Run `iterations` rounds of rollout -> update; returns the logged history."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.logger = RunLogger(self.out_dir, tensorboard=cfg.tensorboard)
        if resume and storage.latest_checkpoint(self.out_dir) is not None:
            self.load_checkpoint(storage.latest_checkpoint(self.out_dir))
        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=not cfg.progress, unit="rollout")
        while self.iteration < cfg.iterations:
            batch, stats = self.rollout()
            stats.update(self.update(batch))
            self.kl.update(stats["kl_penalty"], cfg.rollout_batch)
            self.iteration += 1
            stats["lr"] = self.scheduler.get_last_lr()[0]
            if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iterations:
                self.logger.log(self.iteration, {f"ppo/{k}": v for k, v in stats.items()})
                bar.set_postfix(score=f"{stats['score']:.3f}", kl=f"{stats['kl']:.2f}")
            bar.update(1)
            if cfg.save_every and self.iteration % cfg.save_every == 0 and self.iteration < cfg.iterations:
                self.save_checkpoint()
        bar.close()
        self.save_checkpoint()
        self.logger.close()
        return {"history": self.logger.history, "iteration": self.iteration}

    # ---- checkpoints --------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """step-XXXXXXXX (the iteration): the policy as a loadable model, plus the value head and PPO state."""
        final = self.out_dir / storage.checkpoint_name(self.iteration)
        with storage.atomic_write_dir(final) as tmp:
            storage.save_model(self.policy, tmp, self.tokenizer)
            storage.save_tensors(tmp / "value_head.safetensors", self.value_head.state_dict())
            tensors, meta = ckpt.optimizer_state_to_tensors(self.optimizer)
            storage.save_tensors(tmp / "optimizer.safetensors", tensors)
            storage.write_json(tmp / "optimizer.json", meta)
            storage.write_json(tmp / "scheduler.json", self.scheduler.state_dict())
            tensors, meta = ckpt.rng_state()
            tensors.update({"ppo.rng": self.rng.get_state(), "ppo.sampler": self.sampler.get_state().cpu()})
            storage.save_tensors(tmp / "rng.safetensors", tensors)
            storage.write_json(tmp / "rng.json", meta)
            storage.write_json(tmp / "ppo_state.json", {
                "iteration": self.iteration, "kl_coef": self.kl.coef, "reward_norm": self.reward_norm,
                "history": self.logger.history})
        return final

    def load_checkpoint(self, folder: Path) -> None:
        """Restore what `save_checkpoint` wrote; the reference stays the policy this trainer was built with."""
        storage.load_model_weights(self.policy, folder)
        self.value_head.load_state_dict(storage.read_tensors(folder / "value_head.safetensors"))
        ckpt.load_optimizer_state(self.optimizer, storage.read_tensors(folder / "optimizer.safetensors"),
                                  storage.read_json(folder / "optimizer.json"))
        self.scheduler.load_state_dict(storage.read_json(folder / "scheduler.json"))
        tensors = storage.read_tensors(folder / "rng.safetensors")
        ckpt.set_rng_state(tensors, storage.read_json(folder / "rng.json"))
        self.rng.set_state(tensors["ppo.rng"])
        self.sampler.set_state(tensors["ppo.sampler"])
        state = storage.read_json(folder / "ppo_state.json")
        self.iteration, self.kl.coef = state["iteration"], state["kl_coef"]
        self.reward_norm = tuple(state["reward_norm"]) if state["reward_norm"] is not None else None
        self.logger.history = list(state["history"])
