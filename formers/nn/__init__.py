"""The blocks every formers model is built from."""

from formers.nn.attention import CrossAttention, SelfAttention
from formers.nn.blocks import Block, BlockConfig, PostNorm, PreNorm, Stack, make_block, make_stack
from formers.nn.cache import KVCache, StaticKV
from formers.nn.embeddings import PositionScheme, Rope, check_token_ids
from formers.nn.feedforward import FeedForward, GatedFeedForward, make_feed_forward
from formers.nn.kernel_table import make_kernel
from formers.nn.kernels import ExplicitKernel, SDPAKernel, explicit_attention, sdpa_attention
from formers.nn.masks import causal_mask, combine, padding_mask, prefix_lm_mask, sliding_window_mask
from formers.nn.norms import RMSNorm, make_norm
from formers.nn.positions import PositionKind, make_positions

__all__ = [
    "Block", "BlockConfig", "CrossAttention", "ExplicitKernel", "FeedForward", "GatedFeedForward", "KVCache",
    "PositionKind", "PositionScheme", "PostNorm", "PreNorm", "RMSNorm", "Rope", "SDPAKernel", "SelfAttention",
    "Stack", "StaticKV", "causal_mask", "check_token_ids", "combine", "explicit_attention", "make_block",
    "make_feed_forward", "make_kernel", "make_norm", "make_positions", "make_stack", "padding_mask",
    "prefix_lm_mask", "sdpa_attention", "sliding_window_mask",
]
