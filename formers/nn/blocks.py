"""Residual sublayers, the Transformer block, and a stack of blocks.

Pre-norm vs post-norm is a choice of wrapper made when the block is built
(Xiong et al. 2020 explain why pre-norm trains without warmup); `forward` never asks.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from formers.config import Config, check
from formers.nn.attention import CrossAttention, SelfAttention
from formers.nn.cache import KVCache, StaticKV
from formers.nn.embeddings import Rope
from formers.nn.feedforward import Activation, make_feed_forward
from formers.nn.kernel_table import KERNELS, make_kernel
from formers.nn.long_attention import LongAttentionConfig
from formers.nn.norms import NormKind, make_norm


@dataclasses.dataclass(kw_only=True)
class BlockConfig(Config):
    """What every Transformer layer decides; model configs extend it."""

    d_model: int = 256  # width of the residual stream
    n_heads: int = 4
    d_head: int | None = None  # per-head width; None = d_model // n_heads
    d_ff: int | None = None  # feed-forward inner width; None = 4 * d_model
    activation: Activation = "gelu"
    norm: NormKind = "layernorm"
    norm_eps: float = 1e-5
    norm_placement: Literal["pre", "post", "none"] = "pre"  # "none": no norm anywhere (ablation studies)
    residual: bool = True  # False drops the skip connections (ablation studies; He et al. 2016)
    bias: bool = True  # biases in linear layers and LayerNorm
    dropout: float = 0.1  # on residual branches and embeddings
    attn_dropout: float | None = None  # on attention weights; None = dropout
    attention_scale: float | None = None  # None = 1/sqrt(d_head); 1.0 = unscaled
    kernel: str = "sdpa"  # an entry of formers.nn.kernel_table.KERNELS (long inputs: see nn/long_attention.py)
    attention: LongAttentionConfig = dataclasses.field(default_factory=LongAttentionConfig)  # long kinds' sizes
    checkpoint: bool = False  # recompute each block in backward: activation memory of one block, ~1.3x time

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        check(self.d_model > 0, f"{name}.d_model", self.d_model, "a positive int")
        check(self.n_heads > 0, f"{name}.n_heads", self.n_heads, "a positive int")
        if self.d_head is None:
            check(self.d_model % self.n_heads == 0, f"{name}.n_heads", self.n_heads,
                  f"a divisor of d_model={self.d_model} (or set d_head)")
        check(0.0 <= self.dropout < 1.0, f"{name}.dropout", self.dropout, "a value in [0, 1)")
        check(self.kernel in KERNELS, f"{name}.kernel", self.kernel, f"one of {sorted(KERNELS)}")

    @property
    def head_dim(self) -> int:
        return self.d_head or self.d_model // self.n_heads

    @property
    def ff_dim(self) -> int:
        return self.d_ff or 4 * self.d_model


class PreNorm(nn.Module):
    """x + sublayer(norm(x)) (GPT-2, T5)."""

    def __init__(self, sublayer: nn.Module, norm: nn.Module, dropout: float) -> None:
        super().__init__()
        self.norm, self.sublayer, self.dropout = norm, sublayer, nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return x + self.dropout(self.sublayer(self.norm(x), **kw))


class PostNorm(nn.Module):
    """norm(x + sublayer(x)) (the original Transformer, BERT, BART)."""

    def __init__(self, sublayer: nn.Module, norm: nn.Module, dropout: float) -> None:
        super().__init__()
        self.norm, self.sublayer, self.dropout = norm, sublayer, nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return self.norm(x + self.dropout(self.sublayer(x, **kw)))


class NoResidual(nn.Module):
    """sublayer(norm(x)) with no skip connection: the ablation that shows what residuals are for.

    Without the skip, pre- and post-norm differ only in where a stack's first and last norm sit,
    so both placements build this one order.
    """

    def __init__(self, sublayer: nn.Module, norm: nn.Module, dropout: float) -> None:
        super().__init__()
        self.norm, self.sublayer, self.dropout = norm, sublayer, nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, **kw) -> torch.Tensor:
        return self.dropout(self.sublayer(self.norm(x), **kw))


def residual_wrapper(cfg: BlockConfig) -> type[nn.Module]:
    """The sublayer wrapper a config names; norm_placement "none" is PreNorm around an identity norm."""
    if not cfg.residual:
        return NoResidual
    return PostNorm if cfg.norm_placement == "post" else PreNorm


class Block(nn.Module):
    """Self-attention, then (decoders of encoder-decoder models) cross-attention, then feed-forward."""

    def __init__(self, attention: nn.Module, feed_forward: nn.Module, cross_attention: nn.Module | None = None):
        super().__init__()
        self.attention = attention
        self.cross_attention = cross_attention
        self.feed_forward = feed_forward

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        rope: Rope | None = None,
        cache=None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        memory_bias: torch.Tensor | None = None,
        cross_cache: StaticKV | None = None,
    ) -> torch.Tensor:
        x = self.attention(x, mask=mask, bias=bias, rope=rope, cache=cache)
        if self.cross_attention is not None:
            x = self.cross_attention(x, memory=memory, mask=memory_mask, bias=memory_bias, cache=cross_cache)
        return self.feed_forward(x)


def make_block(cfg: BlockConfig, *, causal: bool, cross: bool = False, d_memory: int | None = None) -> Block:
    """Build one layer as `cfg` describes: the only place configs turn into block modules."""
    residual = residual_wrapper(cfg)
    attn_dropout = cfg.dropout if cfg.attn_dropout is None else cfg.attn_dropout

    def norm() -> nn.Module:
        if cfg.norm_placement == "none":
            return nn.Identity()
        return make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, bias=cfg.bias)

    common = dict(d_head=cfg.d_head, bias=cfg.bias, dropout=attn_dropout, scale=cfg.attention_scale)
    kernel = make_kernel(cfg.kernel, cfg.attention, causal=causal)
    attention = SelfAttention(cfg.d_model, cfg.n_heads, kernel=kernel, causal=causal, **common)
    cross_attention = None
    if cross:
        cross_kernel = make_kernel(cfg.kernel, cfg.attention, cross=True)
        cross_attention = residual(
            CrossAttention(cfg.d_model, cfg.n_heads, kernel=cross_kernel, d_memory=d_memory, **common),
            norm(), cfg.dropout,
        )
    feed_forward = make_feed_forward(cfg.activation, cfg.d_model, cfg.ff_dim, bias=cfg.bias, dropout=0.0)
    return Block(residual(attention, norm(), cfg.dropout), residual(feed_forward, norm(), cfg.dropout), cross_attention)


def _run(block: Block, x: torch.Tensor, **kw) -> torch.Tensor:
    return block(x, **kw)


def _run_checkpointed(block: Block, x: torch.Tensor, **kw) -> torch.Tensor:
    """Keep only the block's input; recompute its activations in backward (Chen et al. 2016)."""
    if not torch.is_grad_enabled():
        return block(x, **kw)
    # Non-reentrant: works with kwargs and inputs that need no grad; RNG state is replayed, so dropout matches.
    return recompute(block, x, use_reentrant=False, **kw)


class Stack(nn.Module):
    """N blocks sharing one mask, position bias and rotary table, plus the final norm of pre-norm stacks.

    `checkpoint=True` recomputes each block during backward instead of keeping its activations.
    """

    def __init__(self, blocks: list[Block], final_norm: nn.Module, checkpoint: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.final_norm = final_norm
        self.run_block = _run_checkpointed if checkpoint else _run  # chosen once, never tested in forward

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        rope: Rope | None = None,
        cache: KVCache | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        memory_bias: torch.Tensor | None = None,
        cross_caches: list[StaticKV] | None = None,
    ) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = self.run_block(
                block, x, mask=mask, bias=bias, rope=rope,
                cache=cache.layer(i) if cache is not None else None,
                memory=memory, memory_mask=memory_mask, memory_bias=memory_bias,
                cross_cache=cross_caches[i] if cross_caches is not None else None,
            )
        if cache is not None:
            cache.advance(x.shape[1])
        return self.final_norm(x)


def make_stack(cfg: BlockConfig, n_layers: int, *, causal: bool, cross: bool = False, d_memory=None) -> Stack:
    """Pre-norm stacks end with a norm (the residual stream is otherwise never normalised)."""
    blocks = [make_block(cfg, causal=causal, cross=cross, d_memory=d_memory) for _ in range(n_layers)]
    pre = cfg.norm_placement == "pre"
    final = make_norm(cfg.norm, cfg.d_model, cfg.norm_eps, bias=cfg.bias) if pre else nn.Identity()
    return Stack(blocks, final, checkpoint=cfg.checkpoint)
