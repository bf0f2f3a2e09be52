"""Alignment on top of the core: SFT, reward models, PPO and DPO, and a rule-checked preference task.

Nothing in the core imports this package; importing it registers the `reward_model` family.
"""

from formers.alignment.data import (
    RecordBatches,
    RecordError,
    RecordTooLongError,
    collate,
    collate_pairs,
    encode_prompts,
    encode_records,
    fixed_batches,
)
from formers.alignment.dpo import DPO, DPOConfig, dpo_loss
from formers.alignment.evaluate import evaluate_policy, rule_metrics, rule_scorer
from formers.alignment.ppo import KLConfig, KLController, PPOConfig, gae, kl_estimate, policy_loss, value_loss
from formers.alignment.ppo_trainer import PPOTrainer, Rollout
from formers.alignment.reward import (
    RewardConfig,
    RewardModel,
    RewardModelConfig,
    RewardObjective,
    bradley_terry_loss,
    pairwise_accuracy,
    reward_model_scorer,
)
from formers.alignment.rules import RulesConfig, RuleTask, satisfaction_by_rule
from formers.alignment.sequences import frozen_copy, sequence_logprobs
from formers.alignment.sft import SFT, SFTConfig, sft_batches, sft_eval_batches, sft_examples

__all__ = [
    "DPO", "SFT", "DPOConfig", "KLConfig", "KLController", "PPOConfig", "PPOTrainer", "RecordBatches", "RecordError",
    "RecordTooLongError", "RewardConfig", "RewardModel", "RewardModelConfig", "RewardObjective", "Rollout",
    "RuleTask", "RulesConfig", "SFTConfig", "bradley_terry_loss", "collate", "collate_pairs", "dpo_loss",
    "encode_prompts", "encode_records", "evaluate_policy", "fixed_batches", "frozen_copy", "gae", "kl_estimate",
    "pairwise_accuracy", "policy_loss", "reward_model_scorer", "rule_metrics", "rule_scorer", "satisfaction_by_rule",
    "sequence_logprobs", "sft_batches", "sft_eval_batches", "sft_examples", "value_loss",
]
