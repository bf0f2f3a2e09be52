"""What a cheaper way of decoding (int8 weights, bf16) costs in quality, against the model it came from.

Two measures, both over the same token windows or prompts for the reference and the candidate:

  perplexity       exp(mean next-token cross-entropy) of a causal LM over windows (N, T): each window
                   predicts its own tokens 2..T.
  greedy agreement the reference decodes each prompt greedily; both models then read those sequences
                   (teacher forcing) and `token` is the fraction of generated positions where the
                   candidate's argmax equals the reference's. A greedy run that differs once diverges
                   from there on, so comparing free-running outputs position by position would count one
                   near-tie as many misses; `identical` (the candidate's own greedy output equals the
                   reference's, prompt by prompt) is reported beside it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from formers.generation import generate


@torch.no_grad()
def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 16) -> float:
    """exp(mean cross-entropy of tokens 2..T given those before them) over windows (N, T) of token ids."""
    model.eval()
    total, count = 0.0, 0
    for chunk in windows.split(batch_size):
        logits = model(chunk[:, :-1]).logits.float()  # (b, T-1, V)
        total += float(F.cross_entropy(logits.flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum"))
        count += chunk[:, 1:].numel()
    return math.exp(total / count)


@torch.no_grad()
def greedy_agreement(reference: nn.Module, candidate: nn.Module, prompts: torch.Tensor, max_new_tokens: int,
                     batch_size: int = 25) -> dict[str, float]:
    """prompts (N, T) of equal length -> {"token": fraction of agreeing argmaxes, "identical": fraction of
    prompts whose greedy continuation is the same}."""
    t = prompts.shape[1]
    agree, positions, identical = 0, 0, 0
    for chunk in prompts.split(batch_size):
        ours = generate(reference, chunk, max_new_tokens=max_new_tokens)  # (b, T + new)
        theirs = generate(candidate, chunk, max_new_tokens=max_new_tokens)
        identical += int((ours == theirs).all(dim=1).sum())
        # the prediction at position i is the token at i + 1: the generated tokens are predicted from t - 1 on
        read = ours[:, :-1]
        expected = reference(read).logits[:, t - 1:].argmax(-1)  # (b, new)
        got = candidate(read).logits[:, t - 1:].argmax(-1)
        agree += int((expected == got).sum())
        positions += expected.numel()
    return {"token": agree / positions, "identical": identical / len(prompts)}
