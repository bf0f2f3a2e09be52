"""One generation loop for decoder-only models: greedy, temperature, top-k, top-p, KV cache.

Prompts of different lengths go in left-padded with an attention mask (see `left_pad`);
absolute positions then start at each prompt's first real token, so a padded prompt
produces the same tokens as the same prompt alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from formers.errors import ConfigError


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (input_ids (B, T), attention_mask (B, T)), padded on the left."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ConfigError("every prompt needs at least one token")
    t = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), t), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, t - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, t - len(s):] = 1
    return ids, mask


def sample_next(
    logits: torch.Tensor,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,)."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        # Nucleus sampling (Holtzman et al. 2020): keep the smallest set whose mass reaches top_p.
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # mass before this token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_options(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens={max_new_tokens} is not allowed; expected >= 0")
    if temperature <= 0:
        raise ConfigError(f"temperature={temperature} is not allowed; expected > 0 (use do_sample=False for greedy)")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k={top_k} is not allowed; expected >= 1 or None")
    if top_p is not None and not 0 < top_p <= 1:
        raise ConfigError(f"top_p={top_p} is not allowed; expected a value in (0, 1]")


def _compute_dtype(model: nn.Module, device: torch.device) -> torch.dtype:
    """The dtype keys/values come out in: the autocast dtype when autocast is on."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return next(model.parameters()).dtype


@torch.no_grad()
def generate(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int = 0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    streamer: Callable[[torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Extend each prompt by up to `max_new_tokens`; returns (B, T + new) token ids.

    Rows that emit `eos_token_id` are finished and padded with `pad_token_id`; the loop
    stops when every row is finished. `streamer` receives each step's new ids (B,).
    """
    _check_options(max_new_tokens, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    b, t = input_ids.shape
    device = input_ids.device
    total = t + max_new_tokens
    mask = torch.ones((b, total), dtype=torch.long, device=device)
    if attention_mask is not None:
        mask[:, :t] = attention_mask
    padded = not bool(mask[:, :t].all())  # an all-ones mask adds nothing and would block the fused causal path
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # absolute positions count real tokens only
    cache = model.new_cache(b, total, dtype=_compute_dtype(model, device), device=device) if use_cache else None
    out = torch.empty((b, total), dtype=torch.long, device=device)
    out[:, :t] = input_ids
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    start, end = 0, t  # the slice of `out` fed to the model this step
    for _ in range(max_new_tokens):
        logits = model(
            out[:, start:end],
            attention_mask=mask[:, :end] if padded else None,
            position_ids=positions[:, start:end],
            cache=cache,
        ).logits[:, -1]
        token = sample_next(
            logits, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        token = torch.where(finished, torch.full_like(token, pad_token_id), token)
        out[:, end] = token
        if streamer is not None:
            streamer(token)
        if eos_token_id is not None:
            finished |= token == eos_token_id
        start, end = (end if use_cache else 0), end + 1
        if eos_token_id is not None and bool(finished.all()):
            break
    model.train(was_training)
    return out[:, :end] if max_new_tokens else input_ids
