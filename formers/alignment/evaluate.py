"""Judging policies by the ground-truth rule: satisfaction rates, KL to a reference, rule rewards for PPO."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from formers.alignment.data import encode_prompts
from formers.alignment.reward import ScoreFn
from formers.alignment.rules import RuleTask, satisfaction_by_rule
from formers.alignment.sequences import decode_responses, response_logprobs, sample


def _texts(tokenizer, query, query_mask, response, response_mask) -> tuple[list[str], list[str]]:
    prompts = [tokenizer.decode(q[m.bool()].tolist()) for q, m in zip(query, query_mask, strict=True)]
    return prompts, decode_responses(tokenizer, response, response_mask)


def rule_scorer(task: RuleTask, tokenizer) -> ScoreFn:
    """A PPO score function that is the rule itself: 1.0 if the response satisfies its prompt, else 0.0."""

    def score(query, query_mask, response, response_mask) -> torch.Tensor:
        prompts, responses = _texts(tokenizer, query, query_mask, response, response_mask)
        hits = [float(task.satisfied(p, r)) for p, r in zip(prompts, responses, strict=True)]
        return torch.tensor(hits, device=response.device)

    return score


def rule_metrics(task: RuleTask, tokenizer):
    """A PPO metrics function: the true satisfaction rate of each rollout (logged as ppo/true_*)."""

    def metrics(query, query_mask, response, response_mask) -> dict[str, float]:
        prompts, responses = _texts(tokenizer, query, query_mask, response, response_mask)
        return {f"true_{k}": v for k, v in satisfaction_by_rule(prompts, responses, task).items()}

    return metrics


@torch.no_grad()
def evaluate_policy(
    model: nn.Module,
    tokenizer,
    task: RuleTask,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    reference: nn.Module | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Sample one response per prompt; return the rule-satisfaction rate (overall, per rule) and mean length.

    With a reference, also the mean per-sequence KL(policy || reference), estimated on the
    policy's own samples as the sum over response tokens of log pi - log pi_ref (unbiased).
    """
    ids = encode_prompts(prompts, tokenizer, model.config.max_seq_len, max_new_tokens)
    generator = torch.Generator(next(model.parameters()).device).manual_seed(seed)
    responses, kls, lengths = [], [], []
    for start in range(0, len(ids), batch_size):
        query, query_mask, response, response_mask = sample(
            model, ids[start : start + batch_size], max_new_tokens=max_new_tokens, eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id, temperature=temperature, generator=generator)
        responses += decode_responses(tokenizer, response, response_mask)
        lengths += response_mask.sum(-1).tolist()
        if reference is not None:
            seqs, mask = torch.cat([query, response], 1), torch.cat([query_mask, response_mask], 1)
            logp = response_logprobs(model, seqs, mask, query.shape[1], temperature)["logp"]
            ref = response_logprobs(reference, seqs, mask, query.shape[1], temperature)["logp"]
            kls += ((logp - ref) * response_mask).sum(-1).tolist()
    out = {f"satisfaction/{k}": v for k, v in satisfaction_by_rule(prompts, responses, task).items()}
    out["response_tokens"] = sum(lengths) / len(lengths)
    if reference is not None:
        out["kl"] = sum(kls) / len(kls)
    return out
