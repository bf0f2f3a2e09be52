"""Weight-only int4 linear layers for decoding on CPU: an eighth of fp32's bytes per weight, plus the groups' scales.

At batch 1 a decoding step reads every weight once, and torch's int8 kernel reads them from memory at about
half the bandwidth of an fp32 `F.linear` (benchmarks/README.md), so int8 gains less than its 4x fewer bytes
at GPT-2 124M. Four bits per weight halve the bytes again. Four bits cannot hold a whole row on one scale, so
each row is cut into groups of `group_size` consecutive inputs, each with its own scale and minimum
(asymmetric min-max quantisation per group: the int4 weight-only scheme of gpt-fast and torchao).

The product is torch's own CPU kernel, `aten._weight_int4pack_mm_for_cpu(x, packed, group_size,
scales_and_zeros)`, which computes with w = (q - 8) * scale + zero for q in [0, 15]. Its constraints, found
by calling it (torch 2.13): the group is 32, 64, 128 or 256 inputs; the output width is a multiple of 16;
its fast path takes bf16 activations (fp32 ones ran 25x slower, Sapphire Rapids, 1 thread). So rows are
padded to a multiple of 16 outputs and inputs to a multiple of the group (zero weights), and the input is
cast to bf16 for the product, as in int8_linear.py.

The packed layout is the kernel's and may depend on the CPU path torch chose at start-up, so a layer is
packed where it is used (from a trained nn.Linear at load time), never saved. CPU only: the CUDA kernel of
the same name wants another packing, and this code has not run on a GPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from formers.errors import ConfigError
from formers.nn.int8_linear import KERNEL_DTYPE

GROUP_SIZES = (32, 64, 128, 256)  # the kernel's
DEFAULT_GROUP_SIZE = 64  # quality vs bytes measured in benchmarks/README.md
OUTPUT_MULTIPLE = 16  # the kernel packs outputs in blocks of 16


def default_group_size(in_features: int) -> int:
    """64, or 32 where the width is not a multiple of 64 (so that a width of 32 or 96 needs no padding)."""
    return DEFAULT_GROUP_SIZE if in_features % DEFAULT_GROUP_SIZE == 0 else GROUP_SIZES[0]


def quantize_int4(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float -> (q (N', K') int32 in [0, 15], scales_and_zeros (K' / group_size, N', 2) bf16).

    N' and K' are N and K rounded up to multiples of 16 and of the group; the padding is zero weights. Each
    group of `group_size` inputs of a row is stored as w ~= (q - 8) * scale + zero, with scale = (max - min) / 15.
    The scale and zero are rounded to bf16 first and q computed from the rounded values, so that their
    rounding is absorbed into q rather than added to every weight of the group.
    """
    if group_size not in GROUP_SIZES:
        raise ConfigError(f"int4 group_size={group_size} is not one the kernel takes; expected one of {GROUP_SIZES}")
    n, k = weight.shape
    w = F.pad(weight.detach().float(), (0, -k % group_size, 0, -n % OUTPUT_MULTIPLE))  # (N', K')
    groups = w.view(w.shape[0], -1, group_size)  # (N', K'/G, G)
    low, high = groups.amin(dim=-1), groups.amax(dim=-1)  # (N', K'/G)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny).to(KERNEL_DTYPE)
    zero = (low + 8 * scale.float()).to(KERNEL_DTYPE)  # the value q = 8 stands for
    offset = zero.float() - 8 * scale.float()  # the value q = 0 stands for, after rounding
    q = torch.round((groups - offset[..., None]) / scale.float()[..., None]).clamp(0, 15)
    scales_and_zeros = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous()  # (K'/G, N', 2)
    return q.view(w.shape).to(torch.int32), scales_and_zeros


def dequantize_int4(q: torch.Tensor, scales_and_zeros: torch.Tensor) -> torch.Tensor:
    """The (N', K') float32 weight that `quantize_int4`'s output stands for: what quality checks compare with."""
    group_size = q.shape[1] // scales_and_zeros.shape[0]
    scale, zero = (scales_and_zeros[..., i].float().t().repeat_interleave(group_size, dim=1) for i in (0, 1))
    return (q.float() - 8) * scale + zero


class Int4Linear(nn.Module):
    """y = x W^T + b with W stored as packed int4 in groups along the input; for inference on CPU only.

    Built from a trained nn.Linear (`Int4Linear.from_linear`); the bias stays in the model's float dtype.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, group_size: int | None = None) -> None:
        super().__init__()
        if weight.device.type != "cpu":
            raise ConfigError(f"int4 weights decode on CPU only (torch's CPU kernel); got a weight on {weight.device}")
        self.out_features, self.in_features = weight.shape
        self.group_size = group_size or default_group_size(self.in_features)
        q, scales_and_zeros = quantize_int4(weight, self.group_size)
        self.padded_in = q.shape[1]
        self.register_buffer("weight", torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))  # (N', K'/2)
        self.register_buffer("scales_and_zeros", scales_and_zeros)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int | None = None) -> Int4Linear:
        return cls(linear.weight, linear.bias, group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            raise ConfigError(f"int4 weights decode on CPU only (torch's CPU kernel); got an input on {x.device}")
        rows = x.reshape(-1, self.in_features).to(KERNEL_DTYPE)  # (M, K); the kernel takes 2-D
        if self.padded_in != self.in_features:
            rows = F.pad(rows, (0, self.padded_in - self.in_features))
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(rows, self.weight, self.group_size, self.scales_and_zeros)
        y = y[:, : self.out_features].reshape(*x.shape[:-1], self.out_features)
        return y.to(x.dtype) if self.bias is None else self.bias + y  # as in Int8Linear: one operator at batch 1

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"group_size={self.group_size}")
