"""Weight-only int8 linear layers for decoding: a quarter of fp32's bytes per weight.

Decoding one token at batch 1 multiplies a vector by every weight matrix once, so its time is the
time to read the weights (fp32 GPT-2 124M: ~500 MB per token). Storing each weight as int8 with one
scale per output channel (absmax / 127; the scheme of LLM.int8()'s vector-wise quantisation, Dettmers
et al. 2022, without its fp16 outlier columns, and of gpt-fast's int8 weight-only mode) reads 4x fewer
bytes; activations stay floating point, so nothing needs calibrating.

The product is torch's own kernel, `aten._weight_int8pack_mm(x, w_int8 (N, K), scales (N,))`, which
multiplies by the int8 weights directly and applies the scale once per output. On CPU its fast paths
take bf16 (or fp16) activations: with fp32 ones it read the weights at 1.7 GB/s, 4x
slower than fp32 `F.linear` (Sapphire Rapids, 1 thread, 3072x768, batch 1). So the input is cast to
bf16 for the product and the output back: at batch 1 that is a few thousand numbers per layer, and
the kernel's accumulation is fp32 (measured error: see tests/nn/test_int8_linear.py).
"""

from __future__ import annotations

import torch
from torch import nn

# The kernel's activation dtype: its vectorised paths (AVX2 and AVX-512) are written for bf16 and fp16.
KERNEL_DTYPE = torch.bfloat16


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (N, K) float -> (int8 (N, K), scales (N,) in KERNEL_DTYPE) with weight ~= int8 * scales[:, None].

    The scales are rounded to bf16 first and the weights divided by the rounded scale, so that rounding
    is absorbed into the int8 values rather than added to every weight of the row.
    """
    w = weight.detach().float()
    scales = (w.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny).to(KERNEL_DTYPE)  # (N,)
    q = torch.round(w / scales.float()[:, None]).clamp(-128, 127).to(torch.int8)  # (N, K)
    return q.contiguous(), scales


class Int8Linear(nn.Module):
    """y = x W^T + b with W stored as int8 (N, K) and per-output-channel scales; for inference only.

    Built from a trained nn.Linear (`Int8Linear.from_linear`); the bias stays in the model's float dtype.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        q, scales = quantize_int8(weight)
        self.register_buffer("weight", q)
        self.register_buffer("scales", scales)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        return cls(linear.weight, linear.bias)

    def dequantized(self) -> torch.Tensor:
        """The weight the layer multiplies by, (N, K) float32: what quality checks compare with."""
        return self.weight.float() * self.scales.float()[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(KERNEL_DTYPE)  # (M, K); the kernel takes 2-D
        y = torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scales).view(*x.shape[:-1], self.out_features)
        if self.bias is None:
            return y.to(x.dtype)
        # an fp32 bias plus the bf16 product is fp32: the add converts as it reads, one operator instead of two
        # (at batch 1 each operator costs more in dispatch than in arithmetic)
        return self.bias + y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
