"""The weight formats a model can decode with, and the swap that converts a model to one."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from formers.errors import ConfigError
from formers.nn.int4_linear import Int4Linear
from formers.nn.int8_linear import Int8Linear

WeightFormat = Literal["fp32", "bf16", "int8", "int4"]
WEIGHT_FORMATS: tuple[str, ...] = get_args(WeightFormat)
QUANTIZED_LAYERS: dict[str, type[Int8Linear] | type[Int4Linear]] = {"int8": Int8Linear, "int4": Int4Linear}


def quantize_weights(model: nn.Module, weights: WeightFormat) -> nn.Module:
    """Convert `model` in place to decode with `weights`, and return it.

    fp32  unchanged.
    bf16  every parameter and buffer in bf16 (half the bytes; fast only where bf16 is native: AMX or
          AVX512-BF16 on CPUs, most GPUs; elsewhere each product is emulated).
    int8  every nn.Linear, the LM head included, becomes an Int8Linear (per-output-channel scales); a head
          tied to the token embedding gets an int8 copy, while the embedding itself stays as it is (a lookup
          reads one row).
    int4  the same with Int4Linear (groups of 64 inputs, or 32 where the width is not a multiple of 64, each
          with a scale and a zero): half int8's bytes, CPU only.
    """
    if weights not in WEIGHT_FORMATS:
        raise ConfigError(f"weights={weights!r} is not a weight format; expected one of {list(WEIGHT_FORMATS)}")
    if weights == "bf16":
        return model.to(torch.bfloat16)
    if weights in QUANTIZED_LAYERS:
        linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        for name, linear in linears:
            model.set_submodule(name, QUANTIZED_LAYERS[weights].from_linear(linear))
    return model
