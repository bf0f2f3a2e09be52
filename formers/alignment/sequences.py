"""What every alignment method needs from a causal LM: positions, log-probs, frozen copies, samples."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from formers.generation import generate, left_pad
from formers.objectives.causal_lm import IGNORE_INDEX


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1 = real token -> position ids counting real tokens only, so left and right padding agree."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def forward(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """The model's output for a padded batch, with positions that skip padding (as `generate` uses)."""
    return model(input_ids, attention_mask=attention_mask, position_ids=positions_from_mask(attention_mask))


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), labels (B, T) -> log p(label) (B, T) in fp32; 0 where the label is IGNORE_INDEX."""
    keep = labels != IGNORE_INDEX
    logp = logits.float().log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * keep


def sequence_logprobs(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of log p(response token | earlier tokens) per row (B,): the response's log-likelihood."""
    logits = forward(model, batch["input_ids"], batch["attention_mask"]).logits
    return token_logprobs(logits, batch["labels"]).sum(-1)


def response_logprobs(
    model: nn.Module, sequences: torch.Tensor, attention_mask: torch.Tensor, query_len: int, temperature: float = 1.0
) -> dict[str, torch.Tensor]:
    """For left-padded query + response rows: {"logp" (B, R), "logits" (B, R, V), "hidden" (B, R, D)}.

    Position query_len - 1 + t predicts response token t, so the slice starts one before the response.
    The logits are divided by the sampling temperature: the log-probs are those of the sampling distribution.
    """
    out = forward(model, sequences, attention_mask)
    logits = out.logits[:, query_len - 1 : -1].float() / temperature  # (B, R, V)
    response = sequences[:, query_len:]  # (B, R)
    logp = logits.log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
    return {"logp": logp, "logits": logits, "hidden": out.last_hidden_state[:, query_len - 1 : -1]}


def frozen_copy(model: nn.Module) -> nn.Module:
    """A reference policy: a copy of `model` in eval mode whose parameters take no gradient."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def response_mask(response: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """(B, R) generated ids -> (B, R) long, 1 up to and including each row's first <eos>."""
    if eos_id is None:
        return torch.ones_like(response)
    is_eos = (response == eos_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after_eos).long()


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_id: int | None,
    pad_id: int,
    temperature: float = 1.0,
    do_sample: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one response per prompt -> (query (B, Tq), query_mask, response (B, R), response_mask).

    Queries are left-padded, so every response starts at column Tq.
    """
    device = next(model.parameters()).device
    query, query_mask = left_pad(prompts, pad_id)
    query, query_mask = query.to(device), query_mask.to(device)
    out = generate(model, query, attention_mask=query_mask, max_new_tokens=max_new_tokens, do_sample=do_sample,
                   temperature=temperature, eos_token_id=eos_id, pad_token_id=pad_id, generator=generator)
    response = out[:, query.shape[1]:]
    return query, query_mask, response, response_mask(response, eos_id)


def decode_responses(tokenizer, response: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Text of each response up to (not including) its <eos>."""
    return [tokenizer.decode(row[: int(m.sum())].tolist()) for row, m in zip(response, mask, strict=True)]
