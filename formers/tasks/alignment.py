"""Alignment tasks on the rule-checked preference data (formers.alignment.rules).

    align_sft     fine-tune a GPT on noisy demonstrations (loss on response tokens)     -> formers train
    align_reward  train a reward model (SFT trunk + scalar head) on preference pairs    -> formers train
    align_dpo     DPO (or reference-free DPO) from the SFT policy on the same pairs     -> formers train
    align_ppo     PPO from the SFT policy against the reward model                      -> run_ppo (own loop)

Later stages start from earlier runs through `objective.init_from` (or `objective.policy`
and `objective.reward` for PPO). The recipe's `model:` must describe the same network in
every stage: weights are loaded into it strictly, and a mismatch names the keys.
studies/rlhf_pipeline.py runs them all in order and judges the policies by the rule.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from formers.alignment import (
    DPO,
    SFT,
    DPOConfig,
    PPOConfig,
    PPOTrainer,
    RewardConfig,
    RewardModel,
    RewardObjective,
    RulesConfig,
    RuleTask,
    SFTConfig,
    collate_pairs,
    encode_prompts,
    encode_records,
    evaluate_policy,
    fixed_batches,
    frozen_copy,
    pairwise_accuracy,
    reward_model_scorer,
    rule_metrics,
    rule_scorer,
    sft_batches,
    sft_eval_batches,
    sft_examples,
)
from formers.alignment.data import PREFERENCE_FIELDS, RecordBatches
from formers.config import Config
from formers.data import train_tokenizer
from formers.errors import ConfigError
from formers.io import load, load_tokenizer
from formers.registry import build_model
from formers.storage import load_model_weights, resolve_checkpoint
from formers.tasks.base import Recipe, Run, Task


@dataclasses.dataclass(kw_only=True)
class AlignSFTConfig(Config):
    rules: RulesConfig = dataclasses.field(default_factory=RulesConfig)
    sft: SFTConfig = dataclasses.field(default_factory=SFTConfig)
    init_from: str | None = None  # a checkpoint or run to start from (e.g. a pretrained LM); None = random init


@dataclasses.dataclass(kw_only=True)
class AlignRewardConfig(Config):
    rules: RulesConfig = dataclasses.field(default_factory=RulesConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    init_from: str | None = None  # the SFT run whose weights start the trunk; None = random trunk


@dataclasses.dataclass(kw_only=True)
class AlignDPOConfig(Config):
    rules: RulesConfig = dataclasses.field(default_factory=RulesConfig)
    dpo: DPOConfig = dataclasses.field(default_factory=DPOConfig)
    init_from: str | None = None  # the SFT run: the starting policy and (frozen) the reference


@dataclasses.dataclass(kw_only=True)
class AlignPPOConfig(Config):
    rules: RulesConfig = dataclasses.field(default_factory=RulesConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    policy: str | None = None  # the SFT run: the starting policy and (frozen) the reference
    reward: str | None = None  # the reward-model run; None = score by the rule itself (an oracle reward)


# ---- shared pieces ---------------------------------------------------------------------------------------------


def tokenizer_for(recipe: Recipe, init_from: str | None):
    """The checkpoint's tokenizer, or a char tokenizer over the rule task's alphabet (the same every run)."""
    if init_from is not None:
        return load_tokenizer(init_from)
    return train_tokenizer(recipe.tokenizer, RuleTask.alphabet())


def policy_for(recipe: Recipe, tokenizer, init_from: str | None) -> torch.nn.Module:
    """recipe.model with the tokenizer's vocabulary, holding the weights of `init_from` if given."""
    torch.manual_seed(recipe.trainer.seed)
    model = build_model(recipe.model.replace(vocab_size=tokenizer.vocab_size))
    if init_from is not None:
        load_model_weights(model, resolve_checkpoint(init_from))
    return model


def _pairs(recipe: Recipe, tokenizer, split: str):
    task = RuleTask(recipe.objective.rules)
    return encode_records(task.preferences(split), PREFERENCE_FIELDS, tokenizer, recipe.model.max_seq_len)


def _pair_sources(recipe: Recipe, tokenizer) -> tuple[RecordBatches, list[dict]]:
    t = recipe.trainer
    collate = lambda ex: collate_pairs(ex, tokenizer.pad_id)  # noqa: E731
    return (RecordBatches(_pairs(recipe, tokenizer, "train"), collate, batch_size=t.batch_size, seed=t.seed),
            fixed_batches(_pairs(recipe, tokenizer, "val"), collate, t.batch_size))


def policy_report(recipe: Recipe, run: Run, reference: torch.nn.Module | None = None) -> str:
    """The true rule-satisfaction rate of sampled responses to fresh test prompts, with a few examples."""
    task = RuleTask(recipe.objective.rules)
    prompts = task.prompts("test")
    numbers = evaluate_policy(run.model, run.tokenizer, task, prompts, max_new_tokens=recipe.sample.max_new_tokens,
                              reference=reference, temperature=recipe.sample.temperature, seed=recipe.sample.seed)
    return "\n".join(f"{k}: {v:.4f}" for k, v in numbers.items())


# ---- align_sft -------------------------------------------------------------------------------------------------


def build_sft(recipe: Recipe) -> Run:
    cfg, t = recipe.objective, recipe.trainer
    tokenizer = tokenizer_for(recipe, cfg.init_from)
    model = policy_for(recipe, tokenizer, cfg.init_from)
    return Run(model=model, objective=SFT(cfg.sft),
               train_source=sft_batches(_demos(recipe, tokenizer, "train"), tokenizer.pad_id,
                                        batch_size=t.batch_size, seed=t.seed),
               val_batches=sft_eval_batches(_demos(recipe, tokenizer, "val"), tokenizer.pad_id, t.batch_size),
               tokenizer=tokenizer)


def _demos(recipe: Recipe, tokenizer, split: str):
    return sft_examples(RuleTask(recipe.objective.rules).demonstrations(split), tokenizer, recipe.model.max_seq_len)


ALIGN_SFT = Task(
    objective_config=AlignSFTConfig, make_objective=lambda recipe: SFT(recipe.objective.sft), build=build_sft,
    report=lambda recipe, run: policy_report(recipe, run),
    eval_data=lambda recipe, tok: sft_eval_batches(_demos(recipe, tok, "val"), tok.pad_id, recipe.trainer.batch_size),
)


# ---- align_reward ----------------------------------------------------------------------------------------------


def build_reward(recipe: Recipe) -> Run:
    cfg = recipe.objective
    tokenizer = tokenizer_for(recipe, cfg.init_from)
    model = RewardModel.from_trunk(policy_for(recipe, tokenizer, cfg.init_from))
    train, val = _pair_sources(recipe, tokenizer)
    return Run(model=model, objective=RewardObjective(cfg.reward), train_source=train, val_batches=val,
               tokenizer=tokenizer)


def reward_report(recipe: Recipe, run: Run) -> str:
    task = RuleTask(recipe.objective.rules)
    test = encode_records(task.preferences("test"), PREFERENCE_FIELDS, run.tokenizer, recipe.model.max_seq_len)
    accuracy = pairwise_accuracy(run.model, fixed_batches(test, lambda ex: collate_pairs(ex, run.tokenizer.pad_id),
                                                          recipe.trainer.batch_size))
    return f"pairwise accuracy on {len(test)} fresh test pairs: {accuracy:.4f}"


ALIGN_REWARD = Task(
    objective_config=AlignRewardConfig, make_objective=lambda recipe: RewardObjective(recipe.objective.reward),
    build=build_reward, report=reward_report, eval_data=lambda recipe, tok: _pair_sources(recipe, tok)[1],
)


# ---- align_dpo -------------------------------------------------------------------------------------------------


def _dpo_objective(recipe: Recipe, policy: torch.nn.Module) -> DPO:
    cfg = recipe.objective
    return DPO(cfg.dpo, None if cfg.dpo.reference_free else frozen_copy(policy))


def build_dpo(recipe: Recipe) -> Run:
    cfg = recipe.objective
    if cfg.init_from is None and not cfg.dpo.reference_free:
        raise ConfigError("objective.init_from=None is not allowed for align_dpo; give the SFT run (the reference)")
    tokenizer = tokenizer_for(recipe, cfg.init_from)
    model = policy_for(recipe, tokenizer, cfg.init_from)
    train, val = _pair_sources(recipe, tokenizer)
    return Run(model=model, objective=_dpo_objective(recipe, model), train_source=train, val_batches=val,
               tokenizer=tokenizer)


def _dpo_eval_objective(recipe: Recipe) -> DPO:
    init = recipe.objective.init_from
    return _dpo_objective(recipe, load(init) if init is not None else None)


def dpo_report(recipe: Recipe, run: Run) -> str:
    reference = run.objective.reference
    return policy_report(recipe, run, reference)


ALIGN_DPO = Task(
    objective_config=AlignDPOConfig, make_objective=_dpo_eval_objective, build=build_dpo, report=dpo_report,
    eval_data=lambda recipe, tok: _pair_sources(recipe, tok)[1],
)


# ---- align_ppo -------------------------------------------------------------------------------------------------


def _not_a_trainer_task(recipe: Recipe):
    raise ConfigError("task align_ppo has its own rollout -> update loop: run it with `formers train` or "
                      "formers.tasks.alignment.run_ppo(recipe, out_dir), not through the Trainer")


def run_ppo(recipe: Recipe, out_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """PPO from `objective.policy` against `objective.reward` (or the rule); returns history and a test report."""
    cfg = recipe.objective
    task = RuleTask(cfg.rules)
    tokenizer = tokenizer_for(recipe, cfg.policy)
    policy = policy_for(recipe, tokenizer, cfg.policy)
    reference = frozen_copy(policy)
    score_fn = rule_scorer(task, tokenizer) if cfg.reward is None else reward_model_scorer(load(cfg.reward))
    prompts = encode_prompts(task.prompts("train"), tokenizer, recipe.model.max_seq_len, cfg.ppo.max_new_tokens)
    trainer = PPOTrainer(policy, score_fn, prompts, config=cfg.ppo, out_dir=out_dir, eos_id=tokenizer.eos_id,
                         pad_id=tokenizer.pad_id, reference=reference, tokenizer=tokenizer,
                         metrics_fn=rule_metrics(task, tokenizer))
    result = trainer.fit(resume=resume)
    result["test"] = evaluate_policy(trainer.policy, tokenizer, task, task.prompts("test"),
                                     max_new_tokens=cfg.ppo.max_new_tokens, reference=reference,
                                     temperature=cfg.ppo.temperature, seed=recipe.sample.seed)
    return result


ALIGN_PPO = Task(
    objective_config=AlignPPOConfig, make_objective=_not_a_trainer_task, build=_not_a_trainer_task,
    report=lambda recipe, run: "", eval_data=lambda recipe, tok: [],
    own_loop=lambda recipe, out_dir, resume: run_ppo(recipe, out_dir, resume=resume),
)
