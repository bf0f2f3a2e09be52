"""Training precision: fp32, bf16 autocast, or a pure-bf16 model with fp32 master weights.

  fp32       everything in float32.
  bf16       autocast: weights stay fp32 and each matmul casts its inputs to bf16 (AMX or AVX512-BF16 on
             CPUs, tensor cores on GPUs); norms, softmax and the loss stay fp32. Every forward re-casts
             every weight, and weight gradients are cast back to fp32.
  bf16-pure  the model itself is bf16, so nothing is re-cast; the optimizer updates fp32 master copies
             of the weights and copies them back after each step (Micikevicius et al. 2018, "Mixed
             Precision Training"): small updates that would vanish in bf16's 8-bit mantissa accumulate in
             fp32. bf16 has fp32's exponent range, so no loss scaling is needed. Under FSDP the same idea
             is FSDP's own policy (fp32 shards, bf16 all-gathers; see distributed.FSDP).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16", "bf16-pure"]


def autocast(precision: Precision, device: torch.device):
    """The context every forward of the Trainer runs in."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class MasterWeights:
    """fp32 copies of a bf16 model's trainable weights: the optimizer sees only these."""

    def __init__(self, model: nn.Module, groups: list[dict]) -> None:
        self.model = model
        self.params = [p for g in groups for p in g["params"]]  # the model's own, soon bf16
        self.master = [p.detach().float().clone().requires_grad_(p.requires_grad) for p in self.params]
        twin = {id(p): m for p, m in zip(self.params, self.master, strict=True)}
        self.groups = [{**g, "params": [twin[id(p)] for p in g["params"]]} for g in groups]
        name_of = {id(p): n for n, p in model.named_parameters()}
        self.names = {id(m): name_of[id(p)] for p, m in zip(self.params, self.master, strict=True)}
        model.to(torch.bfloat16)  # in place: the same Parameter objects, now bf16

    @torch.no_grad()
    def grads_to_master(self) -> None:
        """After backward: the bf16 gradients, widened, become the masters' gradients."""
        for p, m in zip(self.params, self.master, strict=True):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    @torch.no_grad()
    def master_to_model(self) -> None:
        """After the optimizer step: round the updated masters into the bf16 model."""
        torch._foreach_copy_(self.params, self.master)

    def state(self) -> dict[str, torch.Tensor]:
        """name -> fp32 master: what a checkpoint stores instead of the rounded bf16 weights."""
        return {self.names[id(m)]: m.detach() for m in self.master}

    @torch.no_grad()
    def load(self, state: dict[str, torch.Tensor]) -> None:
        for m in self.master:
            m.copy_(state[self.names[id(m)]])
        self.master_to_model()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the model back in fp32 with the exact master values (at the end of training)."""
        self.model.float()
        torch._foreach_copy_(self.params, self.master)
