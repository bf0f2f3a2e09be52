"""Next-token prediction: the loss of every decoder-only language model."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from formers.config import Config, check

IGNORE_INDEX = -100  # label value excluded from the loss (padding, prompt tokens)


class Weighted(NamedTuple):
    """A metric averaged over another unit than the loss's targets (sequences, pairs), with its count:
    the Trainer weighs it by `count` across micro-batches, ranks and validation batches."""

    mean: torch.Tensor
    count: int | torch.Tensor


@dataclasses.dataclass(kw_only=True)
class CausalLMConfig(Config):
    label_smoothing: float = 0.0  # Szegedy et al. 2016; the original Transformer used 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.label_smoothing < 1.0, "CausalLMConfig.label_smoothing", self.label_smoothing, "[0, 1)")


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> dict:
    """Mean cross-entropy over positions whose label is not IGNORE_INDEX, accuracy, and their count.

    "n_targets" tells the Trainer how many targets the mean is over, so that accumulated micro-batches
    and ranks weigh by targets (see training/trainer.py); a batch without targets has loss 0. Softmax
    runs in fp32 whatever the logits' dtype (bf16 under autocast), through `ChunkedCrossEntropy`.
    """
    flat_logits = logits.reshape(-1, logits.shape[-1])  # (N, V)
    flat_labels = labels.reshape(-1)  # (N,)
    loss, predicted = ChunkedCrossEntropy.apply(flat_logits, flat_labels, label_smoothing)
    with torch.no_grad():
        n_targets = (flat_labels != IGNORE_INDEX).sum()
        accuracy = (predicted == flat_labels).sum() / n_targets.clamp(min=1)  # ignored labels never match
    return {"loss": loss, "accuracy": accuracy, "n_targets": n_targets}


class ChunkedCrossEntropy(torch.autograd.Function):
    """F.cross_entropy(logits.float(), labels) (mean over non-ignored rows, label smoothing), computed
    a block of rows at a time, with its gradient; also returns each row's argmax.

    `F.cross_entropy(logits.float())` keeps an fp32 copy of the logits and their fp32 log-softmax for
    backward, whose first step fills a zero (N, V) tensor: at GPT-2 size (N = 2048, V = 50257) each
    of the three is 400 MB of memory traffic. Here each block of rows is widened to fp32 while it is
    in cache, and its softmax - onehot gradient is written once, in the logits' own dtype, during
    the forward pass (as Liger-Kernel's fused cross-entropy does); backward only scales it. The
    logits are not kept, so autograd can free them after the forward pass.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, smoothing: float):
        n, v = logits.shape
        rows = max(1, _BLOCK // v)
        valid = labels != IGNORE_INDEX
        target = labels.clamp(min=0)  # ignored rows point at class 0 and weigh nothing
        weight = valid / valid.sum().clamp(min=1)  # (N,); all ignored -> loss 0 (it weighs n_targets = 0)
        lse, mean = torch.empty(n, device=logits.device), torch.zeros(n, device=logits.device)
        predicted = torch.empty(n, dtype=torch.long, device=logits.device)
        grad = torch.empty_like(logits) if ctx.needs_input_grad[0] else None
        for s in range(0, n, rows):
            x = logits[s : s + rows].to(torch.float32, copy=True)  # (rows, V): copy, never write into logits
            if smoothing:
                mean[s : s + rows] = x.mean(dim=-1)
            top = x.amax(dim=-1, keepdim=True)
            x.sub_(top).exp_()
            total = x.sum(dim=-1, keepdim=True)
            lse[s : s + rows] = (total.log() + top).squeeze(1)
            predicted[s : s + rows] = x.argmax(dim=-1)
            if grad is not None:  # d loss / d logits = weight * (softmax - (1 - eps) onehot - eps / V)
                w = weight[s : s + rows, None]  # (rows, 1)
                x.mul_(w / total)
                if smoothing:
                    x.sub_(w * (smoothing / v))
                x[torch.arange(len(x), device=x.device), target[s : s + rows]] -= (1 - smoothing) * w[:, 0]
                grad[s : s + rows] = x
        picked = logits.gather(1, target[:, None]).squeeze(1).float()  # (N,)
        # -log p_y, smoothed: (1 - eps) (lse - x_y) + eps (lse - mean_j x_j)  (Szegedy et al. 2016)
        per_row = lse - (1 - smoothing) * picked - smoothing * mean
        ctx.grad = grad
        ctx.mark_non_differentiable(predicted)
        return (per_row * weight).sum(), predicted

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _):
        grad, ctx.grad = ctx.grad, None  # scaled in place, so a second backward finds nothing
        if grad is None:
            raise RuntimeError("ChunkedCrossEntropy's gradient was already used; it supports one backward pass")
        return grad.mul_(grad_loss.to(grad.dtype)), None, None


_BLOCK = 1 << 18  # logits per block: 1 MB in fp32, so a block's softmax stays in cache


class CausalLM:
    """batch {"input_ids" (B,T), "labels" (B,T) already shifted, optional "attention_mask"} -> loss."""

    def __init__(self, config: CausalLMConfig | None = None) -> None:
        self.config = config or CausalLMConfig()

    def __call__(self, model: nn.Module, batch: dict) -> dict:
        logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        return token_cross_entropy(logits, batch["labels"], self.config.label_smoothing)
